/*
 * A SIMULATED libneuralnetworks.so for build machines and virtual phones.
 *
 * It implements the subset of the Android NNAPI C API (NeuralNetworks.h) that orch's device
 * agent uses, with AOSP's validation rules (operand types, input counts per operation, call
 * order, exact buffer sizes) and plain float32 reference kernels. It says nothing about a
 * phone's accelerator: every figure it reports is host CPU time. Its devices:
 *   "sim-npu"          ACCELERATOR, feature level 7 (names starting "sim-" mark simulation)
 *   "nnapi-reference"  CPU, like the platform's own CPU reference implementation
 *
 * Environment (read at each call, so a test can change it between calls):
 *   FAKE_NNAPI_DEVICES=a,b,...      device names (default "sim-npu,nnapi-reference"); a name
 *                                   containing "gpu" is a GPU, "cpu" or "nnapi-reference" a CPU,
 *                                   anything else an ACCELERATOR
 *   FAKE_NNAPI_UNSUPPORTED=OP,...   operation names the non-reference devices do not support
 *   FAKE_NNAPI_FAIL=compile|compute  make Compilation_finish / the execution fail (OP_FAILED)
 *   FAKE_NNAPI_CORRUPT=DELTA        add DELTA to every output element of non-reference devices
 *   FAKE_NNAPI_VERBOSE=1            print each rejected call on stderr
 *
 * Like the real runtime, operand values over 128 bytes are NOT copied: the caller must keep
 * them alive until the model is freed. The fake checksums them at Model_finish and verifies
 * them at Compilation_finish and at every execution, failing with BAD_DATA if one changed
 * (a freed or overwritten buffer).
 *
 * Build: cc -shared -fPIC -O2 -o libneuralnetworks.so fake_nnapi.c -lm
 *        add -DFAKE_NNAPI_API=28 for a runtime without the API-29 calls (device enumeration,
 *        compute, timing, caching).
 * Not implemented: quantized types, NCHW layout and dilation inputs, operations other than
 * ADD, MUL, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MEAN, PAD, RESHAPE, memory objects,
 * burst and fenced executions, and partitioning a model across several devices.
 */

#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_NNAPI_API
#define FAKE_NNAPI_API 34
#endif

#define EXPORT __attribute__((visibility("default")))

enum {
    NO_ERROR = 0, OUT_OF_MEMORY = 1, INCOMPLETE = 2, UNEXPECTED_NULL = 3, BAD_DATA = 4,
    OP_FAILED = 5, BAD_STATE = 6, UNMAPPABLE = 7, OUTPUT_INSUFFICIENT_SIZE = 8,
    UNAVAILABLE_DEVICE = 9
};
enum { T_FLOAT32 = 0, T_INT32 = 1, T_UINT32 = 2, T_TENSOR_FLOAT32 = 3, T_TENSOR_INT32 = 4,
       T_BOOL = 6 };
enum { OP_ADD = 0, OP_AVERAGE_POOL_2D = 1, OP_CONV_2D = 3, OP_DEPTHWISE_CONV_2D = 4,
       OP_MUL = 18, OP_RESHAPE = 22, OP_MEAN = 31, OP_PAD = 32 };
enum { FUSE_NONE = 0, FUSE_RELU = 1, FUSE_RELU1 = 2, FUSE_RELU6 = 3 };
enum { DEV_OTHER = 1, DEV_CPU = 2, DEV_GPU = 3, DEV_ACCELERATOR = 4 };
enum { PREFER_LOW_POWER = 0, PREFER_SUSTAINED_SPEED = 2 };
enum { PADDING_SAME = 1, PADDING_VALID = 2 };
enum { DURATION_ON_HARDWARE = 0, DURATION_IN_DRIVER = 1, FENCED_DURATION_ON_HARDWARE = 2,
       FENCED_DURATION_IN_DRIVER = 3 };

#define MAX_RANK 6
#define MAX_COPIED 128 /* ANEURALNETWORKS_MAX_SIZE_OF_IMMEDIATELY_COPIED_VALUES */
#define TOKEN_BYTES 32 /* ANEURALNETWORKS_BYTE_SIZE_OF_CACHE_TOKEN */
#define MAX_DEVICES 8
#define MAX_OP_INPUTS 16
#define FEATURE_LEVEL_7 1000007

typedef struct ANeuralNetworksOperandType {
    int32_t type;
    uint32_t dimensionCount;
    const uint32_t *dimensions;
    float scale;
    int32_t zeroPoint;
} ANeuralNetworksOperandType;

/* ---------------------------------------------------------------- diagnostics */

static __thread char last_error[256];

static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (getenv("FAKE_NNAPI_VERBOSE")) fprintf(stderr, "fake-nnapi: %s\n", last_error);
    return code;
}

/* Not part of NNAPI: lets a caller tell it runs on this simulation, and why a call failed. */
EXPORT int OrchFakeNnapi_isSimulated(void) { return 1; }
EXPORT const char *OrchFakeNnapi_lastError(void) { return last_error; }

static int cache_hits;
EXPORT int OrchFakeNnapi_cacheHits(void) { return cache_hits; }

static const char *op_name(int32_t type) {
    switch (type) {
    case OP_ADD: return "ADD";
    case OP_AVERAGE_POOL_2D: return "AVERAGE_POOL_2D";
    case OP_CONV_2D: return "CONV_2D";
    case OP_DEPTHWISE_CONV_2D: return "DEPTHWISE_CONV_2D";
    case OP_MUL: return "MUL";
    case OP_RESHAPE: return "RESHAPE";
    case OP_MEAN: return "MEAN";
    case OP_PAD: return "PAD";
    default: return NULL;
    }
}

static bool env_list_has(const char *var, const char *word) {
    const char *s = getenv(var);
    size_t n = strlen(word);
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == n && strncmp(s, word, n) == 0) return true;
        s = end ? end + 1 : NULL;
    }
    return false;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- devices */

struct ANeuralNetworksDevice {
    char name[48];
    int32_t type;
    int64_t feature_level;
};
typedef struct ANeuralNetworksDevice ANeuralNetworksDevice;

static ANeuralNetworksDevice devices[MAX_DEVICES];
static uint32_t device_count;

static void load_devices(void) {
    const char *s = getenv("FAKE_NNAPI_DEVICES");
    if (!s || !*s) s = "sim-npu,nnapi-reference";
    device_count = 0;
    while (*s && device_count < MAX_DEVICES) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len > 0) {
            ANeuralNetworksDevice *d = &devices[device_count++];
            if (len >= sizeof d->name) len = sizeof d->name - 1;
            memcpy(d->name, s, len);
            d->name[len] = 0;
            if (strcmp(d->name, "nnapi-reference") == 0 || strstr(d->name, "cpu")) d->type = DEV_CPU;
            else if (strstr(d->name, "gpu")) d->type = DEV_GPU;
            else d->type = DEV_ACCELERATOR;
            d->feature_level = FEATURE_LEVEL_7;
        }
        if (!end) break;
        s = end + 1;
    }
}

__attribute__((unused)) static bool known_device(const ANeuralNetworksDevice *d) {
    return d >= devices && d < devices + device_count;
}

static bool is_reference(const ANeuralNetworksDevice *d) {
    return strcmp(d->name, "nnapi-reference") == 0;
}

static bool device_supports(const ANeuralNetworksDevice *d, int32_t op_type) {
    return is_reference(d) || !env_list_has("FAKE_NNAPI_UNSUPPORTED", op_name(op_type));
}

/* ---------------------------------------------------------------- model */

enum { L_TEMP, L_COPY, L_REF, L_OMITTED, L_INPUT, L_OUTPUT };

typedef struct {
    int32_t type;
    uint32_t rank;
    uint32_t dims[MAX_RANK];
    int lifetime;
    unsigned char small[MAX_COPIED];
    const void *ref;
    size_t length;
    int writer; /* operation writing it, -1 if none */
} Operand;

/* Parameters of one operation, decoded at Model_finish. */
typedef struct {
    int pl, pr, pt, pb, sw, sh, kw, kh, mult, fuse;
    int axes_mask, keep;
    int pads[MAX_RANK][2];
} Params;

typedef struct {
    int32_t type;
    uint32_t nin, in[MAX_OP_INPUTS], out;
    Params p;
} Operation;

struct ANeuralNetworksModel {
    Operand *opnd;
    uint32_t n_opnd, cap_opnd;
    Operation *op;
    uint32_t n_op, cap_op;
    uint32_t *in, n_in, *out, n_out;
    bool identified, finished, relaxed, invalid;
    uint32_t *order;
    uint64_t ref_sum;
};
typedef struct ANeuralNetworksModel ANeuralNetworksModel;

static bool is_tensor(int32_t t) { return t == T_TENSOR_FLOAT32 || t == T_TENSOR_INT32; }
static bool is_scalar(int32_t t) { return t == T_FLOAT32 || t == T_INT32 || t == T_UINT32 || t == T_BOOL; }

static size_t element_count(const Operand *o) {
    size_t n = 1;
    for (uint32_t i = 0; i < o->rank; i++) n *= o->dims[i];
    return n;
}

static size_t byte_size(const Operand *o) {
    if (o->type == T_BOOL) return 1;
    return is_scalar(o->type) ? 4 : 4 * element_count(o);
}

static bool fully_specified(const Operand *o) {
    if (is_scalar(o->type)) return true;
    if (o->rank == 0) return false;
    for (uint32_t i = 0; i < o->rank; i++)
        if (o->dims[i] == 0) return false;
    return true;
}

static const void *value_of(const Operand *o) {
    return o->lifetime == L_COPY ? (const void *)o->small : o->lifetime == L_REF ? o->ref : NULL;
}

/* Word-wise FNV-style hash of every value the model only references (not copied). */
static uint64_t referenced_sum(const ANeuralNetworksModel *m) {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < m->n_opnd; i++) {
        const Operand *o = &m->opnd[i];
        if (o->lifetime != L_REF) continue;
        const unsigned char *p = o->ref;
        size_t n = o->length, k = 0;
        for (; k + 8 <= n; k += 8) {
            uint64_t w;
            memcpy(&w, p + k, 8);
            h = (h ^ w) * 1099511628211ull;
        }
        for (; k < n; k++) h = (h ^ p[k]) * 1099511628211ull;
    }
    return h;
}

static int check_values_unchanged(const ANeuralNetworksModel *m, const char *where) {
    if (referenced_sum(m) != m->ref_sum)
        return fail(BAD_DATA, "%s: an operand value given to setOperandValue changed after "
                    "Model_finish (buffer freed or overwritten)", where);
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_create(ANeuralNetworksModel **model) {
    if (!model) return fail(UNEXPECTED_NULL, "Model_create: model is NULL");
    *model = calloc(1, sizeof **model);
    return *model ? NO_ERROR : OUT_OF_MEMORY;
}

EXPORT void ANeuralNetworksModel_free(ANeuralNetworksModel *m) {
    if (!m) return;
    free(m->opnd);
    free(m->op);
    free(m->in);
    free(m->out);
    free(m->order);
    free(m);
}

static int invalid(ANeuralNetworksModel *m, int code) {
    if (code == BAD_DATA) m->invalid = true;
    return code;
}

EXPORT int ANeuralNetworksModel_addOperand(ANeuralNetworksModel *m,
                                           const ANeuralNetworksOperandType *t) {
    if (!m || !t) return fail(UNEXPECTED_NULL, "addOperand: NULL argument");
    if (m->finished) return fail(BAD_STATE, "addOperand: model already finished");
    if (!is_scalar(t->type) && !is_tensor(t->type))
        return invalid(m, fail(BAD_DATA, "addOperand: operand type %d not supported", t->type));
    if (is_scalar(t->type) && t->dimensionCount != 0)
        return invalid(m, fail(BAD_DATA, "addOperand: scalar type with %u dimensions",
                               t->dimensionCount));
    if (t->dimensionCount > MAX_RANK || (t->dimensionCount && !t->dimensions))
        return invalid(m, fail(BAD_DATA, "addOperand: bad dimensions"));
    if (t->scale != 0.0f || t->zeroPoint != 0)
        return invalid(m, fail(BAD_DATA, "addOperand: scale/zeroPoint must be 0 for type %d",
                               t->type));
    if (m->n_opnd == m->cap_opnd) {
        uint32_t cap = m->cap_opnd ? 2 * m->cap_opnd : 64;
        Operand *p = realloc(m->opnd, cap * sizeof *p);
        if (!p) return OUT_OF_MEMORY;
        m->opnd = p;
        m->cap_opnd = cap;
    }
    Operand *o = &m->opnd[m->n_opnd++];
    memset(o, 0, sizeof *o);
    o->type = t->type;
    o->rank = t->dimensionCount;
    for (uint32_t i = 0; i < o->rank; i++) o->dims[i] = t->dimensions[i];
    o->lifetime = L_TEMP;
    o->writer = -1;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_setOperandValue(ANeuralNetworksModel *m, int32_t index,
                                                const void *buffer, size_t length) {
    if (!m) return fail(UNEXPECTED_NULL, "setOperandValue: model is NULL");
    if (m->finished) return fail(BAD_STATE, "setOperandValue: model already finished");
    if (index < 0 || (uint32_t)index >= m->n_opnd)
        return invalid(m, fail(BAD_DATA, "setOperandValue: no operand %d", index));
    Operand *o = &m->opnd[index];
    if (!buffer) {
        if (length) return fail(UNEXPECTED_NULL, "setOperandValue: NULL buffer, length %zu", length);
        o->lifetime = L_OMITTED;
        return NO_ERROR;
    }
    if (!fully_specified(o))
        return invalid(m, fail(BAD_DATA, "setOperandValue: operand %d has unknown dimensions", index));
    if (length != byte_size(o))
        return invalid(m, fail(BAD_DATA, "setOperandValue: operand %d needs %zu bytes, got %zu",
                               index, byte_size(o), length));
    if (length <= MAX_COPIED) {
        memcpy(o->small, buffer, length);
        o->lifetime = L_COPY;
    } else {
        o->ref = buffer; /* not copied: the caller keeps it alive until Model_free */
        o->lifetime = L_REF;
    }
    o->length = length;
    return NO_ERROR;
}

/* Operand types each operation accepts (NNAPI feature level 1-2 signatures, NHWC). */
static int check_signature(const ANeuralNetworksModel *m, int32_t type, uint32_t nin,
                           const uint32_t *in) {
    int32_t t[MAX_OP_INPUTS];
    for (uint32_t i = 0; i < nin; i++) t[i] = m->opnd[in[i]].type;
    const char *name = op_name(type);
    uint32_t first_int = 0;
    switch (type) {
    case OP_ADD:
    case OP_MUL:
        if (nin != 3) return fail(BAD_DATA, "%s: expects 3 inputs, got %u", name, nin);
        if (t[0] != T_TENSOR_FLOAT32 || t[1] != T_TENSOR_FLOAT32 || t[2] != T_INT32)
            return fail(BAD_DATA, "%s: input types must be (TENSOR_FLOAT32, TENSOR_FLOAT32, INT32)", name);
        return NO_ERROR;
    case OP_CONV_2D:
        if (nin != 10 && nin != 7)
            return fail(BAD_DATA, "CONV_2D: expects 10 (explicit padding) or 7 (implicit) inputs, "
                        "got %u", nin);
        first_int = 3;
        break;
    case OP_DEPTHWISE_CONV_2D:
        if (nin != 11 && nin != 8)
            return fail(BAD_DATA, "DEPTHWISE_CONV_2D: expects 11 (explicit padding) or 8 "
                        "(implicit) inputs, got %u", nin);
        first_int = 3;
        break;
    case OP_AVERAGE_POOL_2D:
        if (nin != 10 && nin != 7)
            return fail(BAD_DATA, "AVERAGE_POOL_2D: expects 10 (explicit padding) or 7 (implicit) "
                        "inputs, got %u", nin);
        first_int = 1;
        break;
    case OP_MEAN:
        if (nin != 3) return fail(BAD_DATA, "MEAN: expects 3 inputs, got %u", nin);
        if (t[0] != T_TENSOR_FLOAT32 || t[1] != T_TENSOR_INT32 || t[2] != T_INT32)
            return fail(BAD_DATA, "MEAN: input types must be (TENSOR_FLOAT32, TENSOR_INT32, INT32)");
        return NO_ERROR;
    case OP_PAD:
    case OP_RESHAPE:
        if (nin != 2) return fail(BAD_DATA, "%s: expects 2 inputs, got %u", name, nin);
        if (t[0] != T_TENSOR_FLOAT32 || t[1] != T_TENSOR_INT32)
            return fail(BAD_DATA, "%s: input types must be (TENSOR_FLOAT32, TENSOR_INT32)", name);
        return NO_ERROR;
    default:
        return fail(BAD_DATA, "addOperation: operation type %d not implemented here", type);
    }
    for (uint32_t i = 0; i < first_int; i++)
        if (t[i] != T_TENSOR_FLOAT32)
            return fail(BAD_DATA, "%s: input %u must be TENSOR_FLOAT32", name, i);
    for (uint32_t i = first_int; i < nin; i++)
        if (t[i] != T_INT32) return fail(BAD_DATA, "%s: input %u must be INT32", name, i);
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_addOperation(ANeuralNetworksModel *m, int32_t type,
                                             uint32_t nin, const uint32_t *in, uint32_t nout,
                                             const uint32_t *out) {
    if (!m || !in || !out) return fail(UNEXPECTED_NULL, "addOperation: NULL argument");
    if (m->finished) return fail(BAD_STATE, "addOperation: model already finished");
    if (!op_name(type))
        return invalid(m, fail(BAD_DATA, "addOperation: operation type %d not implemented here", type));
    if (nin > MAX_OP_INPUTS)
        return invalid(m, fail(BAD_DATA, "%s: too many inputs (%u)", op_name(type), nin));
    for (uint32_t i = 0; i < nin; i++)
        if (in[i] >= m->n_opnd)
            return invalid(m, fail(BAD_DATA, "%s: input %u is operand %u of %u", op_name(type), i,
                                   in[i], m->n_opnd));
    if (nout != 1) return invalid(m, fail(BAD_DATA, "%s: expects 1 output, got %u", op_name(type), nout));
    if (out[0] >= m->n_opnd)
        return invalid(m, fail(BAD_DATA, "%s: output is operand %u of %u", op_name(type), out[0],
                               m->n_opnd));
    Operand *o = &m->opnd[out[0]];
    if (o->type != T_TENSOR_FLOAT32)
        return invalid(m, fail(BAD_DATA, "%s: output must be TENSOR_FLOAT32", op_name(type)));
    if (o->lifetime != L_TEMP || o->writer >= 0)
        return invalid(m, fail(BAD_DATA, "%s: output operand %u is a constant or already written",
                               op_name(type), out[0]));
    int rc = check_signature(m, type, nin, in);
    if (rc != NO_ERROR) return invalid(m, rc);
    if (m->n_op == m->cap_op) {
        uint32_t cap = m->cap_op ? 2 * m->cap_op : 32;
        Operation *p = realloc(m->op, cap * sizeof *p);
        if (!p) return OUT_OF_MEMORY;
        m->op = p;
        m->cap_op = cap;
    }
    Operation *op = &m->op[m->n_op];
    memset(op, 0, sizeof *op);
    op->type = type;
    op->nin = nin;
    memcpy(op->in, in, nin * sizeof *in);
    op->out = out[0];
    o->writer = (int)m->n_op++;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_identifyInputsAndOutputs(ANeuralNetworksModel *m, uint32_t nin,
                                                         const uint32_t *in, uint32_t nout,
                                                         const uint32_t *out) {
    if (!m || (nin && !in) || (nout && !out))
        return fail(UNEXPECTED_NULL, "identifyInputsAndOutputs: NULL argument");
    if (m->finished) return fail(BAD_STATE, "identifyInputsAndOutputs: model already finished");
    for (uint32_t i = 0; i < nin + nout; i++) {
        uint32_t k = i < nin ? in[i] : out[i - nin];
        if (k >= m->n_opnd)
            return invalid(m, fail(BAD_DATA, "identifyInputsAndOutputs: no operand %u", k));
        int lt = m->opnd[k].lifetime;
        if (lt != L_TEMP && lt != L_INPUT && lt != L_OUTPUT)
            return invalid(m, fail(BAD_DATA, "identifyInputsAndOutputs: operand %u is a constant", k));
    }
    free(m->in);
    free(m->out);
    m->in = malloc((nin ? nin : 1) * sizeof *m->in);
    m->out = malloc((nout ? nout : 1) * sizeof *m->out);
    if (!m->in || !m->out) return OUT_OF_MEMORY;
    memcpy(m->in, in, nin * sizeof *in);
    memcpy(m->out, out, nout * sizeof *out);
    m->n_in = nin;
    m->n_out = nout;
    for (uint32_t i = 0; i < nin; i++) m->opnd[in[i]].lifetime = L_INPUT;
    for (uint32_t i = 0; i < nout; i++) m->opnd[out[i]].lifetime = L_OUTPUT;
    m->identified = true;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_relaxComputationFloat32toFloat16(ANeuralNetworksModel *m, bool allow) {
    if (!m) return fail(UNEXPECTED_NULL, "relaxComputationFloat32toFloat16: model is NULL");
    if (m->finished) return fail(BAD_STATE, "relaxComputationFloat32toFloat16: model already finished");
    m->relaxed = allow;
    return NO_ERROR;
}

/* ---------------------------------------------------------------- shape inference */

static int32_t scalar_i32(const ANeuralNetworksModel *m, uint32_t k) {
    int32_t v;
    memcpy(&v, value_of(&m->opnd[k]), 4);
    return v;
}

static int implicit_padding(int scheme, int in, int k, int s, int *head, int *tail) {
    if (scheme == PADDING_VALID) {
        *head = *tail = 0;
        return NO_ERROR;
    }
    if (scheme != PADDING_SAME) return fail(BAD_DATA, "padding scheme %d is neither SAME nor VALID", scheme);
    int out = (in + s - 1) / s;
    int total = (out - 1) * s + k - in;
    if (total < 0) total = 0;
    *head = total / 2;
    *tail = total - *head;
    return NO_ERROR;
}

/* Decode parameters and compute the output dims of one operation. */
static int infer(ANeuralNetworksModel *m, Operation *op, uint32_t *rank, uint32_t *dims) {
    const char *name = op_name(op->type);
    Params *p = &op->p;
    const Operand *x = &m->opnd[op->in[0]];
    for (uint32_t i = 1; i < op->nin; i++) {
        const Operand *c = &m->opnd[op->in[i]];
        /* Weights and parameters must be constants here (the driver prepares them). */
        bool may_vary = (op->type == OP_ADD || op->type == OP_MUL) && i == 1;
        if (!may_vary && !value_of(c))
            return fail(BAD_DATA, "%s: input %u must be a constant here", name, i);
    }
    if (op->type == OP_ADD || op->type == OP_MUL) {
        const Operand *y = &m->opnd[op->in[1]];
        p->fuse = scalar_i32(m, op->in[2]);
        *rank = x->rank > y->rank ? x->rank : y->rank;
        for (uint32_t i = 0; i < *rank; i++) {
            uint32_t a = i < *rank - x->rank ? 1 : x->dims[i - (*rank - x->rank)];
            uint32_t b = i < *rank - y->rank ? 1 : y->dims[i - (*rank - y->rank)];
            if (a != b && a != 1 && b != 1)
                return fail(BAD_DATA, "%s: shapes do not broadcast (dim %u: %u vs %u)", name, i, a, b);
            dims[i] = a > b ? a : b;
        }
    } else if (op->type == OP_CONV_2D || op->type == OP_DEPTHWISE_CONV_2D ||
               op->type == OP_AVERAGE_POOL_2D) {
        if (x->rank != 4) return fail(BAD_DATA, "%s: input must be rank 4 (NHWC)", name);
        int H = (int)x->dims[1], W = (int)x->dims[2], C = (int)x->dims[3], Co = C;
        uint32_t k = op->type == OP_AVERAGE_POOL_2D ? 1 : 3; /* first scalar input */
        bool explicit_pad = op->nin == (op->type == OP_DEPTHWISE_CONV_2D ? 11u : 10u);
        int scheme = 0;
        if (explicit_pad) {
            p->pl = scalar_i32(m, op->in[k]);
            p->pr = scalar_i32(m, op->in[k + 1]);
            p->pt = scalar_i32(m, op->in[k + 2]);
            p->pb = scalar_i32(m, op->in[k + 3]);
            k += 4;
        } else {
            scheme = scalar_i32(m, op->in[k++]);
        }
        p->sw = scalar_i32(m, op->in[k]);
        p->sh = scalar_i32(m, op->in[k + 1]);
        k += 2;
        if (op->type == OP_AVERAGE_POOL_2D) {
            p->kw = scalar_i32(m, op->in[k]);
            p->kh = scalar_i32(m, op->in[k + 1]);
            k += 2;
        } else {
            const Operand *f = &m->opnd[op->in[1]], *b = &m->opnd[op->in[2]];
            if (f->rank != 4 || b->rank != 1) return fail(BAD_DATA, "%s: filter must be rank 4, bias rank 1", name);
            p->kh = (int)f->dims[1];
            p->kw = (int)f->dims[2];
            if (op->type == OP_CONV_2D) {
                if ((int)f->dims[3] != C)
                    return fail(BAD_DATA, "CONV_2D: filter depth %u != input depth %d", f->dims[3], C);
                Co = (int)f->dims[0];
            } else {
                p->mult = scalar_i32(m, op->in[k++]);
                if (f->dims[0] != 1 || p->mult < 1 || (int)f->dims[3] != C * p->mult)
                    return fail(BAD_DATA, "DEPTHWISE_CONV_2D: filter [1,kh,kw,%d*%d] expected",
                                C, p->mult);
                Co = C * p->mult;
            }
            if ((int)b->dims[0] != Co)
                return fail(BAD_DATA, "%s: bias has %u values for %d channels", name, b->dims[0], Co);
        }
        p->fuse = scalar_i32(m, op->in[k]);
        if (p->sw < 1 || p->sh < 1 || p->kw < 1 || p->kh < 1)
            return fail(BAD_DATA, "%s: strides and filter sizes must be >= 1", name);
        if (!explicit_pad) {
            int rc = implicit_padding(scheme, W, p->kw, p->sw, &p->pl, &p->pr);
            if (rc == NO_ERROR) rc = implicit_padding(scheme, H, p->kh, p->sh, &p->pt, &p->pb);
            if (rc != NO_ERROR) return rc;
        }
        if (p->pl < 0 || p->pr < 0 || p->pt < 0 || p->pb < 0)
            return fail(BAD_DATA, "%s: negative padding", name);
        int Ho = (H + p->pt + p->pb - p->kh) / p->sh + 1;
        int Wo = (W + p->pl + p->pr - p->kw) / p->sw + 1;
        if (H + p->pt + p->pb < p->kh || W + p->pl + p->pr < p->kw)
            return fail(BAD_DATA, "%s: filter larger than padded input", name);
        *rank = 4;
        dims[0] = x->dims[0];
        dims[1] = (uint32_t)Ho;
        dims[2] = (uint32_t)Wo;
        dims[3] = (uint32_t)Co;
    } else if (op->type == OP_MEAN) {
        const Operand *a = &m->opnd[op->in[1]];
        if (a->rank != 1) return fail(BAD_DATA, "MEAN: axes must be rank 1");
        const int32_t *axes = value_of(a);
        p->axes_mask = 0;
        for (uint32_t i = 0; i < a->dims[0]; i++) {
            int ax = axes[i] < 0 ? axes[i] + (int)x->rank : axes[i];
            if (ax < 0 || ax >= (int)x->rank) return fail(BAD_DATA, "MEAN: axis %d out of range", axes[i]);
            p->axes_mask |= 1 << ax;
        }
        p->keep = scalar_i32(m, op->in[2]) > 0;
        *rank = 0;
        for (uint32_t i = 0; i < x->rank; i++) {
            if (!(p->axes_mask & (1 << i))) dims[(*rank)++] = x->dims[i];
            else if (p->keep) dims[(*rank)++] = 1;
        }
    } else if (op->type == OP_PAD) {
        const Operand *a = &m->opnd[op->in[1]];
        if (a->rank != 2 || a->dims[0] != x->rank || a->dims[1] != 2)
            return fail(BAD_DATA, "PAD: paddings must be [%u, 2]", x->rank);
        const int32_t *v = value_of(a);
        *rank = x->rank;
        for (uint32_t i = 0; i < x->rank; i++) {
            p->pads[i][0] = v[2 * i];
            p->pads[i][1] = v[2 * i + 1];
            if (v[2 * i] < 0 || v[2 * i + 1] < 0) return fail(BAD_DATA, "PAD: negative padding");
            dims[i] = x->dims[i] + (uint32_t)(v[2 * i] + v[2 * i + 1]);
        }
    } else if (op->type == OP_RESHAPE) {
        const Operand *a = &m->opnd[op->in[1]];
        if (a->rank != 1 || a->dims[0] > MAX_RANK) return fail(BAD_DATA, "RESHAPE: shape must be rank 1");
        const int32_t *v = value_of(a);
        size_t total = element_count(x), known = 1;
        int minus = -1;
        *rank = a->dims[0];
        for (uint32_t i = 0; i < *rank; i++) {
            if (v[i] == -1 && minus < 0) minus = (int)i;
            else if (v[i] <= 0) return fail(BAD_DATA, "RESHAPE: bad dimension %d", v[i]);
            else known *= (size_t)v[i];
        }
        for (uint32_t i = 0; i < *rank; i++) dims[i] = (uint32_t)v[i];
        if (minus >= 0) dims[minus] = (uint32_t)(total / known);
        size_t got = 1;
        for (uint32_t i = 0; i < *rank; i++) got *= dims[i];
        if (got != total) return fail(BAD_DATA, "RESHAPE: %zu elements into %zu", total, got);
    }
    if (p->fuse < FUSE_NONE || p->fuse > FUSE_RELU6)
        return fail(BAD_DATA, "%s: fused activation %d is not a FuseCode", name, p->fuse);
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_finish(ANeuralNetworksModel *m) {
    if (!m) return fail(UNEXPECTED_NULL, "Model_finish: model is NULL");
    if (m->finished) return fail(BAD_STATE, "Model_finish: model already finished");
    if (m->invalid) return fail(BAD_DATA, "Model_finish: an earlier call on this model failed");
    if (!m->identified || m->n_out == 0)
        return fail(BAD_DATA, "Model_finish: identifyInputsAndOutputs was not called");
    for (uint32_t i = 0; i < m->n_opnd; i++) {
        const Operand *o = &m->opnd[i];
        if (o->lifetime == L_TEMP && o->writer < 0)
            return fail(BAD_DATA, "Model_finish: operand %u has no value and no writer", i);
        if (o->lifetime == L_INPUT && o->writer >= 0)
            return fail(BAD_DATA, "Model_finish: model input %u is written by an operation", i);
        if (o->lifetime == L_INPUT && !fully_specified(o))
            return fail(BAD_DATA, "Model_finish: model input %u has unknown dimensions", i);
        if (o->lifetime == L_OUTPUT && o->writer < 0)
            return fail(BAD_DATA, "Model_finish: model output %u is not written", i);
    }
    /* Run order: repeat passes until every operation's inputs are available. */
    free(m->order);
    m->order = malloc((m->n_op ? m->n_op : 1) * sizeof *m->order);
    bool *ready = calloc(m->n_opnd ? m->n_opnd : 1, 1), *done = calloc(m->n_op ? m->n_op : 1, 1);
    if (!m->order || !ready || !done) {
        free(ready);
        free(done);
        return OUT_OF_MEMORY;
    }
    for (uint32_t i = 0; i < m->n_opnd; i++) ready[i] = m->opnd[i].writer < 0;
    uint32_t placed = 0;
    int rc = NO_ERROR;
    for (bool progress = true; progress && placed < m->n_op;) {
        progress = false;
        for (uint32_t i = 0; i < m->n_op && rc == NO_ERROR; i++) {
            Operation *op = &m->op[i];
            if (done[i]) continue;
            bool ok = true;
            for (uint32_t k = 0; k < op->nin; k++) ok = ok && ready[op->in[k]];
            if (!ok) continue;
            uint32_t rank = 0, dims[MAX_RANK] = {0};
            rc = infer(m, op, &rank, dims);
            if (rc != NO_ERROR) break;
            Operand *o = &m->opnd[op->out];
            if (o->rank == 0) { /* unspecified: take the inferred shape (feature level 3) */
                o->rank = rank;
                memcpy(o->dims, dims, sizeof dims);
            }
            bool same = o->rank == rank;
            for (uint32_t k = 0; same && k < rank; k++) {
                if (o->dims[k] == 0) o->dims[k] = dims[k];
                same = o->dims[k] == dims[k];
            }
            if (!same) {
                rc = fail(BAD_DATA, "%s (operation %u): declared output shape differs from the "
                          "inferred one", op_name(op->type), i);
                break;
            }
            ready[op->out] = done[i] = true;
            m->order[placed++] = i;
            progress = true;
        }
        if (rc != NO_ERROR) break;
    }
    free(ready);
    free(done);
    if (rc != NO_ERROR) return rc;
    if (placed < m->n_op) return fail(BAD_DATA, "Model_finish: the operations form a cycle");
    m->ref_sum = referenced_sum(m);
    m->finished = true;
    return NO_ERROR;
}

/* ---------------------------------------------------------------- compilation */

struct ANeuralNetworksCompilation {
    ANeuralNetworksModel *model;
    const ANeuralNetworksDevice *dev[MAX_DEVICES];
    uint32_t n_dev;
    bool explicit_devices, finished, caching;
    int32_t preference;
    char *cache_dir;
    uint8_t token[TOKEN_BYTES];
    const ANeuralNetworksDevice *runs_on;
    bool half; /* fp16 relaxation honoured by the device it runs on */
    float **prepared; /* per operand: the driver's copy of float constants */
};
typedef struct ANeuralNetworksCompilation ANeuralNetworksCompilation;

static int new_compilation(ANeuralNetworksModel *m, ANeuralNetworksCompilation **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return OUT_OF_MEMORY;
    (*out)->model = m;
    (*out)->preference = 1; /* FAST_SINGLE_ANSWER, the runtime's default */
    return NO_ERROR;
}

EXPORT int ANeuralNetworksCompilation_create(ANeuralNetworksModel *m,
                                             ANeuralNetworksCompilation **c) {
    if (!m || !c) return fail(UNEXPECTED_NULL, "Compilation_create: NULL argument");
    if (!m->finished) return fail(BAD_STATE, "Compilation_create: model not finished");
    int rc = new_compilation(m, c);
    if (rc != NO_ERROR) return rc;
    load_devices();
    for (uint32_t i = 0; i < device_count; i++) (*c)->dev[(*c)->n_dev++] = &devices[i];
    return NO_ERROR;
}

EXPORT void ANeuralNetworksCompilation_free(ANeuralNetworksCompilation *c) {
    if (!c) return;
    if (c->prepared) {
        for (uint32_t i = 0; i < c->model->n_opnd; i++) free(c->prepared[i]);
        free(c->prepared);
    }
    free(c->cache_dir);
    free(c);
}

EXPORT int ANeuralNetworksCompilation_setPreference(ANeuralNetworksCompilation *c, int32_t pref) {
    if (!c) return fail(UNEXPECTED_NULL, "setPreference: compilation is NULL");
    if (c->finished) return fail(BAD_STATE, "setPreference: compilation already finished");
    if (pref < PREFER_LOW_POWER || pref > PREFER_SUSTAINED_SPEED)
        return fail(BAD_DATA, "setPreference: %d is not a PreferenceCode", pref);
    c->preference = pref;
    return NO_ERROR;
}

static float half_precision(float x) {
    if (x == 0.0f || !isfinite(x)) return x;
    if (fabsf(x) < 6.103515625e-05f) /* below fp16's smallest normal: steps of 2^-24 */
        return nearbyintf(x * 16777216.0f) / 16777216.0f;
    int e;
    float mant = frexpf(x, &e);
    float r = ldexpf(nearbyintf(mant * 2048.0f) / 2048.0f, e); /* 11 significant bits */
    return fabsf(r) > 65504.0f ? copysignf(INFINITY, x) : r;
}

static void round_half(float *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = half_precision(v[i]);
}

/* The driver's preparation: copy float constants, conv filters as [kh][kw][Cin][Cout]. */
static int prepare(ANeuralNetworksCompilation *c) {
    ANeuralNetworksModel *m = c->model;
    c->prepared = calloc(m->n_opnd ? m->n_opnd : 1, sizeof *c->prepared);
    if (!c->prepared) return OUT_OF_MEMORY;
    for (uint32_t i = 0; i < m->n_opnd; i++) {
        const Operand *o = &m->opnd[i];
        const float *src = value_of(o);
        if (!src || o->type != T_TENSOR_FLOAT32) continue;
        size_t n = element_count(o);
        float *dst = malloc(n * sizeof *dst);
        if (!dst) return OUT_OF_MEMORY;
        memcpy(dst, src, n * sizeof *dst);
        c->prepared[i] = dst;
    }
    for (uint32_t i = 0; i < m->n_op; i++) {
        const Operation *op = &m->op[i];
        if (op->type != OP_CONV_2D) continue;
        const Operand *f = &m->opnd[op->in[1]];
        float *src = c->prepared[op->in[1]];
        if (!src) continue; /* a filter given at execution time is not supported here */
        size_t co = f->dims[0], taps = (size_t)f->dims[1] * f->dims[2] * f->dims[3];
        float *t = malloc(co * taps * sizeof *t);
        if (!t) return OUT_OF_MEMORY;
        for (size_t o = 0; o < co; o++)
            for (size_t k = 0; k < taps; k++) t[k * co + o] = src[o * taps + k];
        free(src);
        c->prepared[op->in[1]] = t;
    }
    if (c->half)
        for (uint32_t i = 0; i < m->n_opnd; i++)
            if (c->prepared[i]) round_half(c->prepared[i], element_count(&m->opnd[i]));
    return NO_ERROR;
}

static void write_cache(ANeuralNetworksCompilation *c) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/", c->cache_dir);
    for (int i = 0; i < TOKEN_BYTES && n < (int)sizeof path - 16; i++)
        n += snprintf(path + n, sizeof path - (size_t)n, "%02x", c->token[i]);
    snprintf(path + n, sizeof path - (size_t)n, ".fakecache");
    uint64_t sum = c->model->ref_sum, old = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(&old, sizeof old, 1, f) == 1 && old == sum) cache_hits++;
        fclose(f);
    }
    f = fopen(path, "wb");
    if (f) {
        fwrite(&sum, sizeof sum, 1, f);
        fclose(f);
    }
}

EXPORT int ANeuralNetworksCompilation_finish(ANeuralNetworksCompilation *c) {
    if (!c) return fail(UNEXPECTED_NULL, "Compilation_finish: compilation is NULL");
    if (c->finished) return fail(BAD_STATE, "Compilation_finish: compilation already finished");
    ANeuralNetworksModel *m = c->model;
    int rc = check_values_unchanged(m, "Compilation_finish");
    if (rc != NO_ERROR) return rc;
    if (env_list_has("FAKE_NNAPI_FAIL", "compile"))
        return fail(OP_FAILED, "Compilation_finish: failure injected by FAKE_NNAPI_FAIL=compile");
    c->runs_on = NULL;
    for (uint32_t d = 0; d < c->n_dev && !c->runs_on; d++) {
        /* Without explicit devices the runtime prefers a driver over its CPU fallback. */
        if (!c->explicit_devices && is_reference(c->dev[d]) && d + 1 < c->n_dev) continue;
        bool all = true;
        for (uint32_t i = 0; i < m->n_op && all; i++) all = device_supports(c->dev[d], m->op[i].type);
        if (all) c->runs_on = c->dev[d];
    }
    for (uint32_t d = 0; d < c->n_dev && !c->runs_on; d++)
        if (is_reference(c->dev[d])) c->runs_on = c->dev[d];
    if (!c->runs_on)
        return fail(BAD_DATA, "Compilation_finish: the chosen devices do not support every operation");
    c->half = m->relaxed && !is_reference(c->runs_on);
    rc = prepare(c);
    if (rc != NO_ERROR) return rc;
    if (c->caching) write_cache(c);
    c->finished = true;
    return NO_ERROR;
}

/* ---------------------------------------------------------------- kernels */

static inline float activate(float v, int fuse) {
    switch (fuse) {
    case FUSE_RELU: return v < 0 ? 0 : v;
    case FUSE_RELU1: return v < -1 ? -1 : v > 1 ? 1 : v;
    case FUSE_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    default: return v;
    }
}

static void conv2d(const float *x, const uint32_t *xd, const float *wt, const float *bias,
                   const Params *p, float *y, const uint32_t *yd, float *acc) {
    int N = (int)xd[0], H = (int)xd[1], W = (int)xd[2], C = (int)xd[3];
    int Ho = (int)yd[1], Wo = (int)yd[2], Co = (int)yd[3];
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                memcpy(acc, bias, (size_t)Co * sizeof *acc);
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = oy * p->sh - p->pt + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < p->kw; kx++) {
                        int ix = ox * p->sw - p->pl + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *xp = x + (((size_t)n * H + iy) * W + ix) * C;
                        const float *wp = wt + (size_t)(ky * p->kw + kx) * C * Co;
                        for (int ci = 0; ci < C; ci++) {
                            float v = xp[ci];
                            const float *wr = wp + (size_t)ci * Co;
                            for (int co = 0; co < Co; co++) acc[co] += v * wr[co];
                        }
                    }
                }
                float *yp = y + (((size_t)n * Ho + oy) * Wo + ox) * Co;
                for (int co = 0; co < Co; co++) yp[co] = activate(acc[co], p->fuse);
            }
}

static void depthwise(const float *x, const uint32_t *xd, const float *w, const float *bias,
                      const Params *p, float *y, const uint32_t *yd, float *acc) {
    int N = (int)xd[0], H = (int)xd[1], W = (int)xd[2], C = (int)xd[3];
    int Ho = (int)yd[1], Wo = (int)yd[2], Co = (int)yd[3], M = p->mult;
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                memcpy(acc, bias, (size_t)Co * sizeof *acc);
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = oy * p->sh - p->pt + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < p->kw; kx++) {
                        int ix = ox * p->sw - p->pl + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *xp = x + (((size_t)n * H + iy) * W + ix) * C;
                        const float *wp = w + (size_t)(ky * p->kw + kx) * Co;
                        for (int c = 0; c < C; c++)
                            for (int j = 0; j < M; j++) acc[c * M + j] += xp[c] * wp[c * M + j];
                    }
                }
                float *yp = y + (((size_t)n * Ho + oy) * Wo + ox) * Co;
                for (int co = 0; co < Co; co++) yp[co] = activate(acc[co], p->fuse);
            }
}

static void avg_pool(const float *x, const uint32_t *xd, const Params *p, float *y,
                     const uint32_t *yd) {
    int N = (int)xd[0], H = (int)xd[1], W = (int)xd[2], C = (int)xd[3];
    int Ho = (int)yd[1], Wo = (int)yd[2];
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int c = 0; c < C; c++) {
                    float sum = 0;
                    int count = 0; /* padding is not counted, as in NNAPI's CPU kernels */
                    for (int ky = 0; ky < p->kh; ky++) {
                        int iy = oy * p->sh - p->pt + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < p->kw; kx++) {
                            int ix = ox * p->sw - p->pl + kx;
                            if (ix < 0 || ix >= W) continue;
                            sum += x[(((size_t)n * H + iy) * W + ix) * C + c];
                            count++;
                        }
                    }
                    y[(((size_t)n * Ho + oy) * Wo + ox) * C + c] =
                        activate(count ? sum / (float)count : 0.0f, p->fuse);
                }
}

/* Row-major strides of dims aligned to `rank` (missing leading dims and size-1 dims get 0). */
static void broadcast_strides(const Operand *o, uint32_t rank, size_t *st) {
    size_t s = 1;
    for (int i = (int)rank - 1; i >= 0; i--) {
        int k = i - (int)(rank - o->rank);
        uint32_t d = k >= 0 ? o->dims[k] : 1;
        st[i] = d == 1 ? 0 : s;
        s *= d;
    }
}

static void binary(int type, const float *a, const Operand *ao, const float *b, const Operand *bo,
                   float *y, const Operand *yo, int fuse) {
    size_t sa[MAX_RANK], sb[MAX_RANK], idx[MAX_RANK] = {0};
    uint32_t r = yo->rank;
    broadcast_strides(ao, r, sa);
    broadcast_strides(bo, r, sb);
    size_t n = element_count(yo);
    for (size_t i = 0; i < n; i++) {
        size_t ia = 0, ib = 0;
        for (uint32_t k = 0; k < r; k++) {
            ia += idx[k] * sa[k];
            ib += idx[k] * sb[k];
        }
        float v = type == OP_ADD ? a[ia] + b[ib] : a[ia] * b[ib];
        y[i] = activate(v, fuse);
        for (int k = (int)r - 1; k >= 0; k--) {
            if (++idx[k] < yo->dims[k]) break;
            idx[k] = 0;
        }
    }
}

static void mean(const float *x, const Operand *xo, const Params *p, float *y, size_t ny) {
    size_t idx[MAX_RANK] = {0}, n = element_count(xo), reduced = 1, out_st[MAX_RANK];
    size_t s = 1;
    for (int k = (int)xo->rank - 1; k >= 0; k--) {
        bool red = p->axes_mask & (1 << k);
        out_st[k] = red ? 0 : s;
        if (red) reduced *= xo->dims[k];
        else s *= xo->dims[k];
    }
    memset(y, 0, ny * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        size_t o = 0;
        for (uint32_t k = 0; k < xo->rank; k++) o += idx[k] * out_st[k];
        y[o] += x[i];
        for (int k = (int)xo->rank - 1; k >= 0; k--) {
            if (++idx[k] < xo->dims[k]) break;
            idx[k] = 0;
        }
    }
    for (size_t i = 0; i < ny; i++) y[i] /= (float)reduced;
}

static void pad(const float *x, const Operand *xo, const Params *p, float *y, const Operand *yo) {
    size_t idx[MAX_RANK] = {0}, n = element_count(xo), st[MAX_RANK], s = 1;
    for (int k = (int)yo->rank - 1; k >= 0; k--) {
        st[k] = s;
        s *= yo->dims[k];
    }
    memset(y, 0, element_count(yo) * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        size_t o = 0;
        for (uint32_t k = 0; k < xo->rank; k++) o += (idx[k] + (size_t)p->pads[k][0]) * st[k];
        y[o] = x[i];
        for (int k = (int)xo->rank - 1; k >= 0; k--) {
            if (++idx[k] < xo->dims[k]) break;
            idx[k] = 0;
        }
    }
}

/* ---------------------------------------------------------------- execution */

#define NOT_MEASURED UINT64_MAX

struct ANeuralNetworksExecution {
    ANeuralNetworksCompilation *c;
    const void **in_buf;
    size_t *in_len;
    void **out_buf;
    size_t *out_len;
    bool measure, started, done;
    uint64_t hw_ns, driver_ns;
};
typedef struct ANeuralNetworksExecution ANeuralNetworksExecution;

typedef struct ANeuralNetworksEvent {
    int rc;
} ANeuralNetworksEvent;

EXPORT int ANeuralNetworksExecution_create(ANeuralNetworksCompilation *c,
                                           ANeuralNetworksExecution **e) {
    if (!c || !e) return fail(UNEXPECTED_NULL, "Execution_create: NULL argument");
    if (!c->finished) return fail(BAD_STATE, "Execution_create: compilation not finished");
    ANeuralNetworksModel *m = c->model;
    ANeuralNetworksExecution *x = calloc(1, sizeof *x);
    if (!x) return OUT_OF_MEMORY;
    x->c = c;
    x->in_buf = calloc(m->n_in ? m->n_in : 1, sizeof *x->in_buf);
    x->in_len = calloc(m->n_in ? m->n_in : 1, sizeof *x->in_len);
    x->out_buf = calloc(m->n_out, sizeof *x->out_buf);
    x->out_len = calloc(m->n_out, sizeof *x->out_len);
    if (!x->in_buf || !x->in_len || !x->out_buf || !x->out_len) {
        free(x->in_buf);
        free(x->in_len);
        free(x->out_buf);
        free(x->out_len);
        free(x);
        return OUT_OF_MEMORY;
    }
    x->hw_ns = x->driver_ns = NOT_MEASURED;
    *e = x;
    return NO_ERROR;
}

EXPORT void ANeuralNetworksExecution_free(ANeuralNetworksExecution *e) {
    if (!e) return;
    free(e->in_buf);
    free(e->in_len);
    free(e->out_buf);
    free(e->out_len);
    free(e);
}

static int check_io_type(const Operand *o, const ANeuralNetworksOperandType *t, const char *what) {
    if (!t) return NO_ERROR;
    if (t->type != o->type || t->dimensionCount != o->rank)
        return fail(BAD_DATA, "%s: type or rank differs from the model's operand", what);
    for (uint32_t i = 0; i < o->rank; i++)
        if (t->dimensions[i] != o->dims[i])
            return fail(BAD_DATA, "%s: dimension %u is %u, the model says %u", what, i,
                        t->dimensions[i], o->dims[i]);
    return NO_ERROR;
}

EXPORT int ANeuralNetworksExecution_setInput(ANeuralNetworksExecution *e, int32_t index,
                                             const ANeuralNetworksOperandType *type,
                                             const void *buffer, size_t length) {
    if (!e) return fail(UNEXPECTED_NULL, "setInput: execution is NULL");
    if (e->started) return fail(BAD_STATE, "setInput: execution already started");
    const ANeuralNetworksModel *m = e->c->model;
    if (index < 0 || (uint32_t)index >= m->n_in) return fail(BAD_DATA, "setInput: no input %d", index);
    if (!buffer && length) return fail(UNEXPECTED_NULL, "setInput: NULL buffer");
    if (e->in_buf[index]) return fail(BAD_STATE, "setInput: input %d already set", index);
    const Operand *o = &m->opnd[m->in[index]];
    int rc = check_io_type(o, type, "setInput");
    if (rc != NO_ERROR) return rc;
    if (buffer && length != byte_size(o))
        return fail(BAD_DATA, "setInput: input %d needs %zu bytes, got %zu", index, byte_size(o), length);
    e->in_buf[index] = buffer;
    e->in_len[index] = length;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksExecution_setOutput(ANeuralNetworksExecution *e, int32_t index,
                                              const ANeuralNetworksOperandType *type,
                                              void *buffer, size_t length) {
    if (!e) return fail(UNEXPECTED_NULL, "setOutput: execution is NULL");
    if (e->started) return fail(BAD_STATE, "setOutput: execution already started");
    const ANeuralNetworksModel *m = e->c->model;
    if (index < 0 || (uint32_t)index >= m->n_out) return fail(BAD_DATA, "setOutput: no output %d", index);
    if (!buffer) return fail(UNEXPECTED_NULL, "setOutput: NULL buffer");
    if (e->out_buf[index]) return fail(BAD_STATE, "setOutput: output %d already set", index);
    const Operand *o = &m->opnd[m->out[index]];
    int rc = check_io_type(o, type, "setOutput");
    if (rc != NO_ERROR) return rc;
    if (length != byte_size(o))
        return fail(BAD_DATA, "setOutput: output %d needs %zu bytes, got %zu", index, byte_size(o), length);
    e->out_buf[index] = buffer;
    e->out_len[index] = length;
    return NO_ERROR;
}

static int run_graph(ANeuralNetworksExecution *e, uint64_t *hw_ns) {
    ANeuralNetworksCompilation *c = e->c;
    ANeuralNetworksModel *m = c->model;
    float **val = calloc(m->n_opnd ? m->n_opnd : 1, sizeof *val);
    bool *owned = calloc(m->n_opnd ? m->n_opnd : 1, 1);
    size_t max_c = 1;
    int rc = NO_ERROR;
    if (!val || !owned) rc = OUT_OF_MEMORY;
    for (uint32_t i = 0; i < m->n_opnd && rc == NO_ERROR; i++) {
        const Operand *o = &m->opnd[i];
        if (o->rank == 4 && o->dims[3] > max_c) max_c = o->dims[3];
        if (c->prepared[i]) {
            val[i] = c->prepared[i];
        } else if (o->writer >= 0 || (c->half && o->lifetime == L_INPUT)) {
            val[i] = malloc(element_count(o) * sizeof(float));
            owned[i] = true;
            if (!val[i]) rc = OUT_OF_MEMORY;
        }
    }
    for (uint32_t k = 0; k < m->n_in && rc == NO_ERROR; k++) {
        uint32_t i = m->in[k];
        if (owned[i]) {
            memcpy(val[i], e->in_buf[k], e->in_len[k]);
            round_half(val[i], element_count(&m->opnd[i]));
        } else {
            val[i] = (float *)e->in_buf[k]; /* read only */
        }
    }
    float *acc = malloc(max_c * sizeof *acc);
    if (!acc && rc == NO_ERROR) rc = OUT_OF_MEMORY;
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < m->n_op && rc == NO_ERROR; k++) {
        const Operation *op = &m->op[m->order[k]];
        const Operand *xo = &m->opnd[op->in[0]], *yo = &m->opnd[op->out];
        const float *x = val[op->in[0]];
        float *y = val[op->out];
        switch (op->type) {
        case OP_ADD:
        case OP_MUL:
            binary(op->type, x, xo, val[op->in[1]], &m->opnd[op->in[1]], y, yo, op->p.fuse);
            break;
        case OP_CONV_2D:
            conv2d(x, xo->dims, val[op->in[1]], val[op->in[2]], &op->p, y, yo->dims, acc);
            break;
        case OP_DEPTHWISE_CONV_2D:
            depthwise(x, xo->dims, val[op->in[1]], val[op->in[2]], &op->p, y, yo->dims, acc);
            break;
        case OP_AVERAGE_POOL_2D:
            avg_pool(x, xo->dims, &op->p, y, yo->dims);
            break;
        case OP_MEAN:
            mean(x, xo, &op->p, y, element_count(yo));
            break;
        case OP_PAD:
            pad(x, xo, &op->p, y, yo);
            break;
        case OP_RESHAPE:
            memcpy(y, x, element_count(yo) * sizeof *y);
            break;
        }
        if (c->half) round_half(y, element_count(yo));
    }
    *hw_ns = now_ns() - t0;
    const char *corrupt = getenv("FAKE_NNAPI_CORRUPT");
    float delta = corrupt && !is_reference(c->runs_on) ? strtof(corrupt, NULL) : 0.0f;
    for (uint32_t k = 0; k < m->n_out && rc == NO_ERROR; k++) {
        const float *src = val[m->out[k]];
        float *dst = e->out_buf[k];
        size_t n = element_count(&m->opnd[m->out[k]]);
        for (size_t i = 0; i < n; i++) dst[i] = src[i] + delta;
    }
    free(acc);
    for (uint32_t i = 0; owned && i < m->n_opnd; i++)
        if (owned[i]) free(val[i]);
    free(val);
    free(owned);
    return rc;
}

static int execute(ANeuralNetworksExecution *e, const char *where) {
    if (e->started) return fail(BAD_STATE, "%s: execution already started (not reusable)", where);
    const ANeuralNetworksModel *m = e->c->model;
    for (uint32_t k = 0; k < m->n_in; k++)
        if (!e->in_buf[k]) return fail(BAD_DATA, "%s: input %u not set", where, k);
    for (uint32_t k = 0; k < m->n_out; k++)
        if (!e->out_buf[k]) return fail(BAD_DATA, "%s: output %u not set", where, k);
    e->started = true;
    uint64_t t0 = now_ns(), hw = 0;
    int rc = check_values_unchanged(m, where);
    if (rc == NO_ERROR && env_list_has("FAKE_NNAPI_FAIL", "compute"))
        rc = fail(OP_FAILED, "%s: failure injected by FAKE_NNAPI_FAIL=compute", where);
    if (rc == NO_ERROR) rc = run_graph(e, &hw);
    e->done = true;
    if (rc == NO_ERROR && e->measure) {
        e->hw_ns = hw;
        e->driver_ns = now_ns() - t0;
    }
    return rc;
}

EXPORT int ANeuralNetworksExecution_startCompute(ANeuralNetworksExecution *e,
                                                 ANeuralNetworksEvent **event) {
    if (!e || !event) return fail(UNEXPECTED_NULL, "startCompute: NULL argument");
    if (e->started) return fail(BAD_STATE, "startCompute: execution already started");
    ANeuralNetworksEvent *ev = calloc(1, sizeof *ev);
    if (!ev) return OUT_OF_MEMORY;
    ev->rc = execute(e, "startCompute"); /* synchronous here; reported by Event_wait */
    *event = ev;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksEvent_wait(ANeuralNetworksEvent *event) {
    if (!event) return fail(UNEXPECTED_NULL, "Event_wait: event is NULL");
    return event->rc;
}

EXPORT void ANeuralNetworksEvent_free(ANeuralNetworksEvent *event) { free(event); }

#if FAKE_NNAPI_API >= 29

EXPORT int ANeuralNetworks_getDeviceCount(uint32_t *n) {
    if (!n) return fail(UNEXPECTED_NULL, "getDeviceCount: NULL argument");
    load_devices();
    *n = device_count;
    return NO_ERROR;
}

EXPORT int ANeuralNetworks_getDevice(uint32_t index, ANeuralNetworksDevice **d) {
    if (!d) return fail(UNEXPECTED_NULL, "getDevice: NULL argument");
    load_devices();
    if (index >= device_count) return fail(BAD_DATA, "getDevice: no device %u", index);
    *d = &devices[index];
    return NO_ERROR;
}

EXPORT int ANeuralNetworksDevice_getName(const ANeuralNetworksDevice *d, const char **name) {
    if (!d || !name) return fail(UNEXPECTED_NULL, "Device_getName: NULL argument");
    *name = d->name;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksDevice_getType(const ANeuralNetworksDevice *d, int32_t *type) {
    if (!d || !type) return fail(UNEXPECTED_NULL, "Device_getType: NULL argument");
    *type = d->type;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksDevice_getVersion(const ANeuralNetworksDevice *d, const char **version) {
    if (!d || !version) return fail(UNEXPECTED_NULL, "Device_getVersion: NULL argument");
    *version = "orch-fake-nnapi 1 (simulated on the host CPU)";
    return NO_ERROR;
}

EXPORT int ANeuralNetworksDevice_getFeatureLevel(const ANeuralNetworksDevice *d, int64_t *level) {
    if (!d || !level) return fail(UNEXPECTED_NULL, "Device_getFeatureLevel: NULL argument");
    *level = d->feature_level;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksModel_getSupportedOperationsForDevices(
    const ANeuralNetworksModel *m, const ANeuralNetworksDevice *const *devs, uint32_t n,
    bool *supported) {
    if (!m || !devs || !supported)
        return fail(UNEXPECTED_NULL, "getSupportedOperationsForDevices: NULL argument");
    if (!m->finished) return fail(BAD_STATE, "getSupportedOperationsForDevices: model not finished");
    if (n == 0) return fail(BAD_DATA, "getSupportedOperationsForDevices: no devices");
    for (uint32_t d = 0; d < n; d++)
        if (!known_device(devs[d])) return fail(BAD_DATA, "getSupportedOperationsForDevices: bad device");
    for (uint32_t i = 0; i < m->n_op; i++) {
        supported[i] = false;
        for (uint32_t d = 0; d < n; d++) supported[i] = supported[i] || device_supports(devs[d], m->op[i].type);
    }
    return NO_ERROR;
}

EXPORT int ANeuralNetworksCompilation_createForDevices(ANeuralNetworksModel *m,
                                                       const ANeuralNetworksDevice *const *devs,
                                                       uint32_t n, ANeuralNetworksCompilation **c) {
    if (!m || !devs || !c) return fail(UNEXPECTED_NULL, "Compilation_createForDevices: NULL argument");
    if (!m->finished) return fail(BAD_STATE, "Compilation_createForDevices: model not finished");
    if (n == 0 || n > MAX_DEVICES) return fail(BAD_DATA, "Compilation_createForDevices: %u devices", n);
    for (uint32_t d = 0; d < n; d++) {
        if (!known_device(devs[d])) return fail(BAD_DATA, "Compilation_createForDevices: bad device");
        for (uint32_t k = 0; k < d; k++)
            if (devs[k] == devs[d]) return fail(BAD_DATA, "Compilation_createForDevices: device repeated");
    }
    int rc = new_compilation(m, c);
    if (rc != NO_ERROR) return rc;
    for (uint32_t d = 0; d < n; d++) (*c)->dev[d] = devs[d];
    (*c)->n_dev = n;
    (*c)->explicit_devices = true;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksCompilation_setCaching(ANeuralNetworksCompilation *c,
                                                 const char *cache_dir, const uint8_t *token) {
    if (!c || !cache_dir || !token) return fail(UNEXPECTED_NULL, "setCaching: NULL argument");
    if (c->finished) return fail(BAD_STATE, "setCaching: compilation already finished");
    free(c->cache_dir);
    c->cache_dir = strdup(cache_dir);
    if (!c->cache_dir) return OUT_OF_MEMORY;
    memcpy(c->token, token, TOKEN_BYTES);
    c->caching = true;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksExecution_compute(ANeuralNetworksExecution *e) {
    if (!e) return fail(UNEXPECTED_NULL, "Execution_compute: execution is NULL");
    return execute(e, "Execution_compute");
}

EXPORT int ANeuralNetworksExecution_setMeasureTiming(ANeuralNetworksExecution *e, bool measure) {
    if (!e) return fail(UNEXPECTED_NULL, "setMeasureTiming: execution is NULL");
    if (!e->c->explicit_devices || e->c->n_dev != 1)
        return fail(BAD_DATA, "setMeasureTiming: needs a compilation for exactly one device");
    if (e->started) return fail(BAD_STATE, "setMeasureTiming: execution already started");
    e->measure = measure;
    return NO_ERROR;
}

EXPORT int ANeuralNetworksExecution_getDuration(const ANeuralNetworksExecution *e, int32_t code,
                                                uint64_t *duration) {
    if (!e || !duration) return fail(UNEXPECTED_NULL, "getDuration: NULL argument");
    if (!e->done) return fail(BAD_STATE, "getDuration: execution not finished");
    switch (code) {
    case DURATION_ON_HARDWARE: *duration = e->hw_ns; break;
    case DURATION_IN_DRIVER: *duration = e->driver_ns; break;
    case FENCED_DURATION_ON_HARDWARE:
    case FENCED_DURATION_IN_DRIVER: *duration = NOT_MEASURED; break;
    default: return fail(BAD_DATA, "getDuration: %d is not a DurationCode", code);
    }
    return NO_ERROR;
}

#endif /* FAKE_NNAPI_API >= 29 */

#if FAKE_NNAPI_API >= 31
EXPORT int64_t ANeuralNetworks_getRuntimeFeatureLevel(void) { return FEATURE_LEVEL_7; }
#endif
