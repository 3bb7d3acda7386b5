"""Builds the compiled core (analyzer._lpm from _core/). Everything else is in pyproject.toml."""

import os
import platform

from Cython.Build import cythonize
from setuptools import Extension, setup

compile_args = ["-O3"] if os.name != "nt" else ["/O2"]
# Every x86-64 CPU since 2008 has POPCNT; without the flag the poptrie's popcount becomes a
# library call. MAILFLOW_PORTABLE_BUILD=1 leaves it out for older machines.
if (
    os.name != "nt"
    and platform.machine().lower() in ("x86_64", "amd64")
    and not os.environ.get("MAILFLOW_PORTABLE_BUILD")
):
    compile_args.append("-mpopcnt")

extensions = [
    Extension(
        "analyzer._lpm",
        sources=["_core/_lpm.pyx"],
        include_dirs=["_core"],
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["_core"],
        compiler_directives={"language_level": "3"},
    )
)
