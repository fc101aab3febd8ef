"""Build of the optional compiled line solver (``arma_core.backends._lines_c``).

Everything else about the package is declared in pyproject.toml. The extension is optional:
when it cannot be compiled (no C compiler) the install still succeeds and ``method="lines"``
is unavailable (the generic ``fft`` and ``dense`` methods run instead).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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
    def build_extensions(self):
        flags = MSVC_FLAGS if self.compiler.compiler_type == "msvc" else GCC_FLAGS
        for ext in self.extensions:
            ext.extra_compile_args = flags
            if self.compiler.compiler_type != "msvc":
                ext.extra_link_args = ["-pthread"]
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "arma_core.backends._lines_c",
            ["backends/_lines_c.c"],
            depends=["backends/_lines_c_grad.h", "backends/_lines_c_api.h"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
