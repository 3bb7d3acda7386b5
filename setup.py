"""Builds the compiled core (analyzer._lpm and analyzer._scan from _core/). Everything else is in
pyproject.toml."""

import os
import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

compile_args = ["-O3"] if os.name != "nt" else ["/O2"]
# x86-64-v2 (POPCNT, SSSE3, SSE4.2: every x86-64 CPU since about 2009) turns the poptrie's
# popcount into one instruction and enables the SSSE3 address parser; without it the popcount is
# a library call and the parser falls back to SSE2. MAILFLOW_PORTABLE_BUILD=1 leaves it out.
if (
    os.name != "nt"
    and platform.machine().lower() in ("x86_64", "amd64")
    and not os.environ.get("MAILFLOW_PORTABLE_BUILD")
):
    compile_args.append("-march=x86-64-v2")

extensions = [
    Extension(
        "analyzer._lpm",
        sources=["_core/_lpm.pyx"],
        include_dirs=["_core"],
        extra_compile_args=compile_args,
    ),
    Extension(
        "analyzer._scan",
        sources=["_core/_scan.pyx"],
        include_dirs=["_core"],
        extra_compile_args=compile_args,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["_core"],
        compiler_directives={"language_level": "3"},
    )
)
