"""Child registries of MMEngine's roots, all under the ``cnclip_mm`` scope.

Each ``locations`` entry is imported on first build, so configs never need ``custom_imports``.
One ``MODELS`` registry holds backbones, text encoders, tokenizers, heads and losses.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'MODELS', 'MODEL_WRAPPERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'METRICS', 'EVALUATOR',
    'HOOKS', 'LOOPS', 'RUNNERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'WEIGHT_INITIALIZERS', 'VISBACKENDS', 'VISUALIZERS', 'LOG_PROCESSORS', 'FUNCTIONS',
    'STRATEGIES',
]

_MODELS = ['cnclip_mm.models']
_DATA = ['cnclip_mm.datasets']
_ENGINE = ['cnclip_mm.engine']

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=_MODELS)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=_MODELS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, locations=_MODELS)
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=_DATA)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=_DATA)
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['cnclip_mm.datasets.transforms'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=_DATA)
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['cnclip_mm.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['cnclip_mm.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=_ENGINE + ['cnclip_mm.evaluation', 'cnclip_mm.datasets'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=_ENGINE + ['cnclip_mm.evaluation'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=_ENGINE)
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, locations=_ENGINE)
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=_ENGINE)
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=_ENGINE)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=_ENGINE)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=_ENGINE)
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, locations=['cnclip_mm.visualization'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['cnclip_mm.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, locations=_ENGINE)
