"""Test helpers for NNAPI: the simulated library, tiny MobileNet trunks, LiteRT references.

The simulated libneuralnetworks.so is built from orchestrator/simnnapi/fake_nnapi.c, the one
source, which virtual phones ship too.
"""
