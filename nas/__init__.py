"""NAS proxies for NNI 3.0: the DC paper's ConvNet grid as an NNI model space, proxy training
sets (condensed, coreset, early stopping, whole) cached on disk, a FunctionalEvaluator trial,
grid experiments with resume, Spearman scoring with each proxy's compute, and results files that
a fresh checkout re-scores and continues from.

Modules: :mod:`nas.space`, :mod:`nas.proxy`, :mod:`nas.evaluator`, :mod:`nas.experiment`,
:mod:`nas.scoring`, :mod:`nas.results`, :mod:`nas.config`, :mod:`nas.data`, :mod:`nas.cli` (``dc-nas``). Importing
``nas`` itself is cheap; NNI is imported by the modules that need it.
"""

__all__ = ["load_config", "NasConfig", "run_nas"]


def __getattr__(name):
    if name in ("load_config", "NasConfig"):
        from . import config
        return getattr(config, name)
    if name == "run_nas":
        from .experiment import run_nas
        return run_nas
    raise AttributeError(name)
