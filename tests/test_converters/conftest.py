"""Fixtures of the converter tests: official-layout checkpoints and a tiny Hugging Face folder."""
import shutil

import pytest
import torch
from ckpt_builders import (
    official_rn_state_dict,
    official_vit_state_dict,
    save_official,
    tiny_hf_config,
)


@pytest.fixture
def official_vit(tmp_path):
    torch.manual_seed(0)
    sd = official_vit_state_dict()
    return sd, save_official(sd, tmp_path / 'epoch_latest.pt')


@pytest.fixture
def official_rn(tmp_path):
    torch.manual_seed(1)
    sd = official_rn_state_dict()
    return sd, save_official(sd, tmp_path / 'epoch1.pt')


@pytest.fixture(scope='module')
def hf_tiny_dir(tmp_path_factory, vocab_file):
    """A random tiny ChineseCLIPModel saved with save_pretrained, plus the real vocab.txt."""
    from transformers import ChineseCLIPModel
    torch.manual_seed(2)
    model = ChineseCLIPModel(tiny_hf_config()).eval()
    with torch.no_grad():  # HF inits biases/LayerNorms to constants; perturb all so every tensor matters
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    folder = tmp_path_factory.mktemp('hf_tiny')
    model.save_pretrained(folder)
    shutil.copyfile(vocab_file, folder / 'vocab.txt')
    return folder, model
