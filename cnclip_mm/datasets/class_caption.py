"""A labelled image set (ImageFolder / CIFAR style) seen as image-text pairs for contrastive fine-tuning."""
import random
from typing import List, Optional, Sequence, Union

from cnclip_mm.registry import DATASETS

from ..evaluation.templates import load_templates, read_lines
from .base import BadSampleAwareDataset


@DATASETS.register_module()
class ClassCaptionDataset(BadSampleAwareDataset):
    """Each image of a classification dataset gets the caption ``template.format(class_name)``.

    The template is drawn at random each time an item is fetched (so each epoch sees other
    captions); ``gt_label`` and ``image_id`` (the image path, or source name and index) are kept for
    ``ContrastiveLoss(positives=...)``, which should treat same-class pairs as positives here.

    Args:
        dataset: config (or instance) of a dataset whose items hold an image and ``gt_label`` and whose
            ``metainfo['classes']`` names the classes (``ImageFolderZeroShotDataset``, ``CIFAR100Dataset``).
        templates: prompt templates with one ``{}``: a built-in set name, a text file or a list.
        classes: Chinese class names (list or file) replacing the dataset's.
        pipeline: the training pipeline (LoadImage ... TokenizeText, PackCLIPInputs).
        **kwargs: See :class:`BadSampleAwareDataset`.
    """

    def __init__(self, dataset: Union[dict, object], templates: Union[str, Sequence[str], None] = None,
                 classes: Union[str, Sequence[str], None] = None, pipeline: Sequence = (), **kwargs):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dict(dataset, pipeline=[]))
        self.source = dataset
        self.templates = load_templates(templates)
        if isinstance(classes, str):
            classes = read_lines(classes, 'class-name')
        classes = list(classes or (dataset.metainfo or {}).get('classes') or [])
        if not classes:
            raise ValueError(f'ClassCaptionDataset: {type(dataset).__name__} has no metainfo["classes"]; '
                             'pass classes=[...]')
        super().__init__(metainfo=dict(classes=classes, templates=self.templates), pipeline=pipeline,
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        return [dict(source_idx=i) for i in range(len(self.source))]

    def get_data_info(self, idx: int) -> Optional[dict]:
        info = self.source.get_data_info(idx)
        label = int(info['gt_label'])
        classes = self.metainfo['classes']
        if not 0 <= label < len(classes):
            raise ValueError(f'ClassCaptionDataset: item {idx} has label {label}, outside the '
                             f'{len(classes)} class names')
        # A string id (the file, else the source and index) never equals another set's integer ids
        # when this dataset is concatenated with caption data.
        image_id = info.get('img_path') or f'{type(self.source).__name__}[{idx}]'
        info.update(sample_idx=idx, image_id=image_id, gt_label=label,
                    text=random.choice(self.templates).format(classes[label]))
        return info
