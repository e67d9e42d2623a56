"""The model-zoo metafile names configs that exist and parameter counts those configs build."""
import re

import torch
import yaml
from mmengine.config import Config

from cnclip_mm.registry import MODELS


def test_metafile_entries_match_configs():
    meta = yaml.safe_load(open('configs/metafile.yml', encoding='utf-8'))
    assert len(meta['Models']) == 16  # official 5, mmpretrain 4, Hugging Face 4, QA-CLIP 3
    counts = {}
    for entry in meta['Models']:
        if entry['Config'] not in counts:  # configs are shared between sources of the same weights
            cfg = Config.fromfile(entry['Config'])
            with torch.device('meta'):
                model = MODELS.build(cfg.model)
            counts[entry['Config']] = sum(p.numel() for p in model.parameters()) / 1e6
        count = counts[entry['Config']]
        stated = float(re.match(r'(\d+)M', entry['Metadata']['Parameters']).group(1))
        assert abs(count - stated) / stated < 0.01, (entry['Name'], count)
        if entry['Name'].startswith('cn-clip_'):
            assert entry['Results'], entry['Name']
