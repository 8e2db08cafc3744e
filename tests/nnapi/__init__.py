"""Test helpers for NNAPI: the simulated library, tiny MobileNet trunks, LiteRT references.

`fake_nnapi.c` here is the simulated libneuralnetworks.so that virtual phones ship too
(a link to orchestrator/simnnapi/fake_nnapi.c, the one source).
"""
