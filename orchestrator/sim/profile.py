"""Device profiles: what a virtual phone says it is (getprop), its power and thermal
behaviour, where its Python lives, and start-time faults. Shipped as YAML in profiles/.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import NotFound, SpecError, SpecProblem
from orchestrator.runtimes import LITERT
from orchestrator.runtimes import NAMES as RUNTIME_NAMES
from orchestrator.sim.arm64_root import RUNTIMES as ARM64_WHEELS
from orchestrator.sim.faults import Faults

PROFILES_DIR = Path(__file__).with_name("profiles")
REQUIRED_PROPS = ("ro.product.model", "ro.product.manufacturer", "ro.product.name",
                  "ro.product.device", "ro.build.version.sdk", "ro.build.version.release",
                  "ro.product.cpu.abi")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatterySpec(_Strict):
    capacity_mah: int = Field(4000, gt=0)
    level: float = Field(80.0, ge=0, le=100)  # % at power-on
    plugged: Literal["none", "usb", "ac"] = "usb"
    idle_drain_pct_h: float = Field(2.0, ge=0)  # % per hour at rest
    busy_drain_pct_h: float = Field(8.0, ge=0)  # % per hour per busy core
    charge_pct_h: float = Field(10.0, ge=0)  # % per hour gained while plugged
    technology: str = "Li-ion"


class ThermalSpec(_Strict):
    ambient_c: float = 25.0
    idle_c: float = 32.0  # SoC at rest
    rise_per_core_c: float = Field(6.0, ge=0)  # SoC above idle per busy core, settled
    tau_s: float = Field(60.0, gt=0)  # time constant of the SoC temperature
    skin_share: float = Field(0.6, ge=0, le=1)  # skin follows ambient + share × (SoC − ambient)
    battery_share: float = Field(0.4, ge=0, le=1)
    cpu_sensor: str = "cpu0"
    # Skin temperatures at which thermal status becomes light … shutdown (PowerManager 1…6).
    thresholds_c: list[float] = Field(default_factory=lambda: [39.0, 43.0, 46.0, 49.0, 52.0,
                                                               55.0], min_length=6, max_length=6)


class TermuxSpec(_Strict):
    """A Termux-like install (orchestrator/sim/termux.py): which build it is (run-as needs a
    debuggable one: Termux's GitHub builds), what `pkg` has installed at power-on, whether its
    sshd runs and whether it holds the storage permission. Its `pkg` and Python are simulated
    (the host's interpreter, with each module gated by its Termux package)."""

    debuggable: bool = False
    source: Literal["github", "fdroid", "play"] = "github"  # decides installer and signature
    version: str = "0.118.1"  # versionName as `dumpsys package com.termux` shows it
    uid: int = Field(10234, ge=10000, le=19999)  # the app's Linux uid (u0_a234)
    packages: list[str] = Field(default_factory=list)  # installed by `pkg` at power-on
    sshd: bool = False  # sshd already running at power-on (as after Termux:Boot)
    storage: bool = False  # READ/WRITE_EXTERNAL_STORAGE granted (termux-setup-storage)

    @model_validator(mode="after")
    def _sshd_needs_openssh(self) -> TermuxSpec:
        if self.sshd and "openssh" not in self.packages:
            raise ValueError("sshd: true needs openssh in packages")
        return self


class Profile(_Strict):
    id: str
    description: str = ""
    props: dict[str, str]
    python: str | None = "/system/bin/python3"  # where the phone's Python is; None: no Python
    # The TFLite runtime the phone's Python has: the host's LiteRT, or a real tflite-runtime
    # wheel in a cached environment of its own (orchestrator/runtimes.py).
    runtime: str = LITERT
    cores: int = Field(8, ge=1)
    battery: BatterySpec = BatterySpec()
    thermal: ThermalSpec = ThermalSpec()
    nnapi_lib: str | None = None  # host .so exposed as /system/lib64/libneuralnetworks.so
    termux: TermuxSpec | None = None
    # The adb shell's user: root (a rooted phone) or `shell` (uid 2000, a stock phone: the
    # kernel then refuses it what Android refuses it, e.g. an app's private folder).
    shell_user: Literal["root", "shell"] = "root"
    settings: dict[str, str] = Field(default_factory=dict)  # `settings get global` at power-on
    # The phone's Python: the host's (`host`), or aarch64 CPython in a Debian arm64 root run
    # through qemu-user (`arm64`, orchestrator/sim/arm64_root.py).
    arch: Literal["host", "arm64"] = "host"
    faults: Faults = Faults()

    @field_validator("props", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        # YAML reads `ro.build.version.sdk: 34` as an int; getprop only knows strings.
        if not isinstance(v, dict):
            return v
        return {str(k): "" if x is None else str(x) for k, x in v.items()}

    @field_validator("python")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("/system/", "/data/", "/sdcard/")):
            raise ValueError("must be a path under /system, /data or /sdcard")
        return v

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, v: str) -> str:
        if v not in RUNTIME_NAMES:
            raise ValueError(f"unknown runtime {v!r}; expected one of {', '.join(RUNTIME_NAMES)}")
        return v

    @model_validator(mode="after")
    def _required(self) -> Profile:
        missing = [k for k in REQUIRED_PROPS if not self.props.get(k)]
        if missing:
            raise ValueError(f"props lack {', '.join(missing)}")
        if self.arch == "arm64" and (self.termux is not None or self.shell_user != "root"):
            raise ValueError("arch: arm64 needs shell_user: root and no termux (its Python "
                             "enters the arm64 root with chroot)")
        if self.arch == "arm64" and self.runtime not in ARM64_WHEELS:
            raise ValueError(f"runtime {self.runtime!r} has no aarch64 build in the arm64 root; "
                             f"expected one of {', '.join(ARM64_WHEELS)}")
        return self

    @property
    def model(self) -> str:
        return self.props["ro.product.model"]

    def all_props(self, name: str) -> dict[str, str]:
        """Every property `getprop` lists for the phone called `name`, sorted by key."""
        serial = hashlib.sha1(f"{self.id}:{name}".encode()).hexdigest()[:12].upper()
        props = {
            "ro.product.cpu.abilist": self.props["ro.product.cpu.abi"],
            "ro.build.type": "user",
            "ro.debuggable": "0",
            "ro.secure": "1",
            "sys.boot_completed": "1",
            "ro.serialno": serial,
            "ro.boot.serialno": serial,
            "persist.sys.timezone": "UTC",
            "ro.kernel.qemu": "0",  # a phone, not an emulator
        }
        props.update(self.props)
        props["ro.boot.serialno"] = props["ro.serialno"]
        return dict(sorted(props.items()))


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(ref: str | Path) -> tuple[Profile, Path]:
    """A shipped profile by id (`pixel7`) or a YAML file by path → (profile, its file)."""
    path = Path(ref)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROFILES_DIR / f"{ref}.yaml"
        if not path.is_file():
            raise NotFound(f"No phone profile {str(ref)!r}.",
                           hint=f"Use one of {', '.join(profile_names())} or a YAML file.")
    return parse_profile(path.read_text(), source=str(path)), path


def parse_profile(text: str, *, source: str = "profile") -> Profile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError([SpecProblem("(file)", str(e).splitlines()[0])], source=source) from None
    if not isinstance(data, dict):
        raise SpecError([SpecProblem("(file)", "expected a mapping")], source=source)
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise SpecError([SpecProblem(".".join(map(str, err["loc"])) or "(profile)", err["msg"])
                         for err in e.errors()], source=source) from None
