"""A Gradio app: zero-shot classification of an uploaded image on typed classes, and Chinese text->image and
image->image search over a gallery or a vector index with thumbnails and scores (extra ``[demo]``). Started by
tools/demo/app.py."""
import logging
import os
import re
from typing import List, Optional

from torch import nn

from .inferencers import (
    ImageToImageRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)

CLASS_SEPARATORS = r'[,，、;；\n]+'


def parse_classes(text: str) -> List[str]:
    """Class names typed by a user: separated by commas (ASCII or full-width), 、, semicolons or lines."""
    classes = [c.strip() for c in re.split(CLASS_SEPARATORS, text or '') if c.strip()]
    if not classes:
        raise ValueError('type at least one class name, e.g. 猫, 狗, 汽车')
    return classes


def build_demo(model: nn.Module, gallery: Optional[str] = None, templates: Optional[str] = None,
               topk: int = 8, cache_file: Optional[str] = None, index: Optional[str] = None):
    """The ``gradio.Blocks`` app; endpoints ``/classify`` (image, classes), ``/search`` (query, k) and
    ``/search_image`` (image, k).

    Args:
        model: a built ``ChineseCLIP`` (eval mode).
        gallery: images to search (folder / TSV / glob), or the thumbnails of ``index``'s matches; without
            either only classification is offered.
        index: a vector index made by this model (tools/index/build_index.py) to search instead of brute
            force over ``gallery``.
        templates: zero-shot prompt templates (default: the built-in Chinese ImageNet set).
        topk: default number of search results.
        cache_file: where the gallery features are cached (default: under ``$CNCLIP_HOME``).
    """
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import gradio as gr

    search = similar = None
    if gallery or index:
        search = TextToImageRetrievalInferencer(model, gallery=gallery, index=index, topk=topk, cache_file=cache_file)
        similar = ImageToImageRetrievalInferencer(model, gallery=gallery, index=search.search.index, topk=topk,
                                                  cache_file=cache_file)

    def classify(image, classes_text: str, k: float = 5):
        if image is None:
            raise gr.Error('upload an image first')
        try:
            classes = parse_classes(classes_text)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        result = ZeroShotClassificationInferencer(model, classes=classes, templates=templates,
                                                  topk=int(k))(image)[0]
        label = {name: score for name, score in zip(result['topk_classes'], result['topk_scores'])}
        table = [[name, round(score, 6)] for name, score in label.items()]
        return label, table

    def run_search(query: str, k: float = topk):
        if not (query or '').strip():
            raise gr.Error('type a Chinese query, e.g. 海边的日落')
        search.topk = int(k)
        return _shown(search, search(query.strip())[0]['matches'])

    def run_image_search(image, k: float = topk):
        if image is None:
            raise gr.Error('upload an image first')
        similar.topk = int(k)
        return _shown(similar, similar(image)[0]['matches'])

    with gr.Blocks(title='Chinese CLIP') as demo:
        gr.Markdown('# Chinese CLIP: zero-shot classification and text-to-image search')
        with gr.Tab('Zero-shot classification'):
            with gr.Row():
                image = gr.Image(type='pil', label='image')
                with gr.Column():
                    classes = gr.Textbox(label='classes (comma separated)', value='猫, 狗, 汽车, 风景')
                    k_cls = gr.Slider(1, 20, value=5, step=1, label='top-k')
                    button = gr.Button('classify')
            label = gr.Label(label='prediction')
            cls_table = gr.Dataframe(headers=['class', 'probability'], label='scores')
            button.click(classify, [image, classes, k_cls], [label, cls_table], api_name='classify')
        if search is not None:
            with gr.Tab('Text-to-image search'):
                query = gr.Textbox(label='query (Chinese)', value='海边的日落')
                size = len(search.search)
                k_search = gr.Slider(1, min(50, size), value=min(topk, size), step=1, label='results')
                go = gr.Button('search')
                thumbs = gr.Gallery(label=f'gallery of {size} images', columns=4)
                hits = gr.Dataframe(headers=['image', 'similarity'], label='scores')
                go.click(run_search, [query, k_search], [thumbs, hits], api_name='search')
            with gr.Tab('Image-to-image search'):
                query_image = gr.Image(type='pil', label='query image')
                k_similar = gr.Slider(1, min(50, size), value=min(topk, size), step=1, label='results')
                go_similar = gr.Button('find similar images')
                similar_thumbs = gr.Gallery(label=f'gallery of {size} images', columns=4)
                similar_hits = gr.Dataframe(headers=['image', 'similarity'], label='scores')
                go_similar.click(run_image_search, [query_image, k_similar], [similar_thumbs, similar_hits],
                                 api_name='search_image')
    return demo


def _shown(inferencer, matches):
    """Thumbnails (when the gallery is known) and the id / similarity table of matches."""
    thumbs = [(_thumbnail_source(inferencer.search.item(m)), f'{m["id"]}  {m["score"]:.4f}') for m in matches
              if m.get('index') is not None]
    return thumbs, [[str(m['id']), round(m['score'], 6)] for m in matches]


def _thumbnail_source(item):
    """Gradio shows paths and PIL images; arrays become PIL images."""
    import numpy as np
    from PIL import Image
    return Image.fromarray(item) if isinstance(item, np.ndarray) else item


def launch(demo, **kwargs):
    """``demo.launch(**kwargs)`` that leaves the process's log files open.

    Gradio's server (uvicorn) applies ``logging.config.dictConfig``, which closes every logging handler of
    the process, so a Runner or ``init_model`` later in the same process would write to a closed mmengine
    log file. Those files are reopened in append mode.
    """
    handlers = [h for h in logging._handlerList if isinstance(h(), logging.FileHandler)]
    open_files = [h() for h in handlers if h().stream is not None]
    result = demo.launch(**kwargs)
    for handler in open_files:
        if handler.stream is None:
            handler.mode = 'a'
            try:
                handler.stream = handler._open()
                handler._closed = False
            except OSError:  # its folder is gone (e.g. a finished run's temporary work dir)
                _detach(handler)
    return result


def _detach(handler: logging.Handler) -> None:
    """Remove a handler that can no longer write from every logger holding it (stdlib and mmengine)."""
    from mmengine.logging import MMLogger
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values(),
               *MMLogger._instance_dict.values()]
    for logger in loggers:
        if isinstance(logger, logging.Logger) and handler in logger.handlers:
            logger.removeHandler(handler)
