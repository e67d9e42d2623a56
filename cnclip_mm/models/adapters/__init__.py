"""Parameter-efficient fine-tuning: LoRA on the towers through peft (``model.adapters`` in a config)."""

from .lora import (
    adapter_state_dict,
    apply_adapters,
    count_parameters,
    freeze_base,
    has_adapters,
    is_adapter_key,
    lora_config,
    merge_adapters,
)

__all__ = [
    'adapter_state_dict',
    'apply_adapters',
    'count_parameters',
    'freeze_base',
    'has_adapters',
    'is_adapter_key',
    'lora_config',
    'merge_adapters',
]
