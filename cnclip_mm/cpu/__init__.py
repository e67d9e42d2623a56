"""Everything CPU-specific, in one leaf package that the model never imports.

:func:`cpu_speed` is the switch (the runner's ``cpu_speed`` config key, the inference functions'
``cpu_speed`` argument): on a CPU it reroutes, from outside the model (:mod:`.mode`), the Linear
layers' large float32 products to oneDNN (:mod:`.onednn`) and training dropout, attention's too
(:mod:`.attention`), to a fast sampler whose masks are the same on every CPU vendor (:mod:`.dropout`),
sets the thread count (:mod:`.threads`), keeps freed memory for the next step (:mod:`.heap`) and keeps
the garbage collector off long-lived objects (:mod:`.gc_freeze`);
everything is put back when its block ends. :class:`Bf16GemmAsFp32` (:mod:`.bf16`) runs bf16 matrix products on
CPUs without bf16 matrix instructions. This package imports torch, numpy and the standard library
only (and mmengine's logging), never the models or the APIs.
"""
from .bf16 import Bf16GemmAsFp32, bf16_autocast, bf16_gemm_context, uses_fp32_gemm
from .mode import CpuFastPaths
from .speed import CpuSpeed, cpu_speed
from .threads import ThreadPlan, auto_workers, choose_threads, resolve_auto_workers

__all__ = ['Bf16GemmAsFp32', 'CpuFastPaths', 'CpuSpeed', 'ThreadPlan', 'auto_workers', 'bf16_autocast',
           'bf16_gemm_context', 'choose_threads', 'cpu_speed', 'resolve_auto_workers', 'uses_fp32_gemm']
