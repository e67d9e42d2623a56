"""Training machinery: hooks, optimizer constructors/wrappers, runner and DDP wrapper."""
from .checkpoint_safety import register_checkpoint_safe_globals
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403

register_checkpoint_safe_globals()
