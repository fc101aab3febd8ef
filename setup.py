"""Build of the optional compiled line solver (``arma_core.backends._lines_c``) and of its
torch autograd node (``arma_core.backends._lines_torch``).

Everything else about the package is declared in pyproject.toml. Both extensions are optional:
when the line solver cannot be compiled (no C compiler) the install still succeeds and
``method="lines"`` is unavailable (the generic ``fft`` and ``dense`` methods run instead). The
autograd node is built only where torch is importable at build time, against that torch's
headers: not in pip's isolated build environment, so the Makefile runs
``python setup.py build_ext --inplace`` after installing torch (``pip install
--no-build-isolation`` with torch installed does the same). Without it, or when the running torch
is not the one it was built for, the layers run the same kernels through a Python
``autograd.Function``.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError

# The recurrences must keep IEEE semantics for NaN and inf (a non-finite sample propagates);
# reassociation is allowed so that the dot products of the backward pass vectorise.
GCC_FLAGS = [
    "-O3",
    "-std=c99",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-signed-zeros",
    "-fassociative-math",
    "-freciprocal-math",
    "-ffp-contract=fast",
    "-fvisibility=hidden",
    "-Wno-psabi",  # vectors passed between always-inline helpers of the x86-64 clones
]
MSVC_FLAGS = ["/O2", "/fp:fast"]


class BuildExt(build_ext):
    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, CompileError, LinkError):
            if "-fopenmp" not in ext.extra_compile_args:
                raise
            # a compiler without OpenMP: the node still builds, its parts then run in turn
            # (_lines_torch.ON_TORCH_THREADS is False)
            ext.extra_compile_args = [f for f in ext.extra_compile_args if f != "-fopenmp"]
            ext.extra_link_args = [f for f in ext.extra_link_args if f != "-fopenmp"]
            super().build_extension(ext)

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        for ext in self.extensions:
            if ext.language == "c++":  # the torch node: its flags come with it
                continue
            ext.extra_compile_args = MSVC_FLAGS if msvc else GCC_FLAGS
            if not msvc:
                ext.extra_link_args = ["-pthread"]
        super().build_extensions()


def torch_node():
    """The torch autograd node's extension, or None when torch is not importable here."""
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return None
    version = torch.__version__
    msvc = sys.platform == "win32"
    # C++20: what torch's own extension builder asks for (the 2.13 headers need it)
    flags = ["/O2", "/std:c++20"] if msvc else ["-O2", "-g0", "-std=c++20", "-fvisibility=hidden"]
    flags += [
        f'-DARMA_TORCH_VERSION="{version}"',
        "-DTORCH_EXTENSION_NAME=_lines_torch",
        "-DTORCH_API_INCLUDE_EXTENSION_H",
    ]
    link = []
    if not msvc:
        flags.append(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
        if torch.backends.openmp.is_available():
            # at::parallel_for runs its parts on torch's OpenMP threads only in code compiled
            # with OpenMP (otherwise it runs them one after the other); at run time the node
            # then shares the libgomp torch has loaded (same soname)
            flags.append("-fopenmp")
            link.append("-fopenmp")
    return Extension(
        "arma_core.backends._lines_torch",
        ["backends/_lines_torch.cpp"],
        depends=["backends/_lines_c_api.h"],
        include_dirs=cpp_extension.include_paths(),
        library_dirs=cpp_extension.library_paths(),
        libraries=["c10", "torch", "torch_cpu", "torch_python"],
        language="c++",
        extra_compile_args=flags,
        extra_link_args=link,
        optional=True,
    )


extensions = [
    Extension(
        "arma_core.backends._lines_c",
        ["backends/_lines_c.c"],
        depends=["backends/_lines_c_grad.h", "backends/_lines_c_api.h"],
        optional=True,
    )
]
node = torch_node()
if node is not None:
    extensions.append(node)

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
