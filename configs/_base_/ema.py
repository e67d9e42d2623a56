# Optional exponential moving average of the weights (MMEngine's EMAHook + ExponentialMovingAverage):
# validation and test run on the averaged weights, and checkpoints store them as `state_dict` (the raw
# weights go to `ema_state_dict`, which a resume swaps back). Use it in a leaf:
#   _base_ = [..., '../_base_/ema.py']
#   custom_hooks = [..., {{_base_.ema_hook}}]
# ABOVE_NORMAL: the EMA weights are swapped in before ZeroShotClassesHook (NORMAL) builds the classifier.
ema_hook = dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=1e-3, update_buffers=True,
                priority='ABOVE_NORMAL')
