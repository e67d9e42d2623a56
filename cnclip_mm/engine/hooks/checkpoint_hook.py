"""Checkpoint hook whose files and ``last_checkpoint`` pointer are never left half-written."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from cnclip_mm.engine.runner.atomic_io import write_text_atomic
from cnclip_mm.registry import HOOKS


@HOOKS.register_module()
class CLIPCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that saves first, then points ``last_checkpoint`` at the file, then prunes.

    mmengine deletes the oldest kept checkpoint *before* writing the new one and rewrites
    ``last_checkpoint`` in place: killed in between, ``--resume`` finds the pointer naming a deleted or
    partial file. Here the checkpoint is written atomically (``CLIPRunner.save_checkpoint``), the pointer
    is replaced atomically after it, and old files are removed last. Arguments are ``CheckpointHook``'s.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        keep = self.max_keep_ckpts
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        stale = []
        # keep_ckpt_ids exists only with max_keep_ckpts > 0; a best checkpoint may re-save this step.
        if keep > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == keep:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.save_checkpoint(self.out_dir, ckpt_filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in stale:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
