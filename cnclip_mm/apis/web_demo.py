"""A Gradio app: zero-shot classification of an uploaded image on typed classes, and Chinese text->image and
image->image search over a gallery or a vector index with thumbnails and scores (extra ``[demo]``). Started by
tools/demo/app.py.

Every bad input gets a message naming what is wrong (``gr.Error``), a query longer than the model reads is
searched by its first tokens with a notice saying so, and probabilities are a softmax at the model's own
learned logit scale, shown as percentages.
"""
import logging
import os
import os.path as osp
import re
from typing import Any, List, Optional

from torch import nn

from .inferencers import (
    ImageToImageRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)

CLASS_SEPARATORS = r'[,，、;；\n]+'
IMAGE_TYPES = 'JPEG, PNG, WebP, BMP, GIF or TIFF'


def parse_classes(text: str) -> List[str]:
    """Class names typed by a user: separated by commas (ASCII or full-width), 、, semicolons or lines."""
    classes = [c.strip() for c in re.split(CLASS_SEPARATORS, text or '') if c.strip()]
    if not classes:
        raise ValueError('type at least one class name, e.g. 猫, 狗, 汽车')
    return classes


def percent(p: float) -> str:
    """A probability as a percentage with one decimal ('<0.1%' for what would round to nothing)."""
    return '<0.1%' if 0 < p < 0.0005 else f'{p:.1%}'


def truncation_note(model: nn.Module, query: str) -> str:
    """'' when ``query`` fits the model's context length, else what was kept of it."""
    tokenizer = model.tokenizer
    if not tokenizer.encode(query)[1]:  # (ids, cut off)
        return ''
    kept = tokenizer.context_length - 2  # [CLS] and [SEP]
    tokens = tokenizer.tokenize(query)
    kept_text = ''.join(t[2:] if t.startswith('##') else t for t in tokens[:kept])
    return (f'The query has {len(tokens)} tokens; the model reads {kept} (context length '
            f'{tokenizer.context_length}), so it was truncated to: {kept_text[:60]}{"…" if len(kept_text) > 60 else ""}')


def read_upload(component: Any, payload: Optional[dict], what: str = 'an image'):
    """The PIL image of an upload, or a ``gr.Error`` naming the file.

    The events run with ``preprocess=False``: Gradio's own decoding of a file that is no image fails with a
    bare "Error" and no message, so the payload is decoded here.
    """
    import gradio as gr
    if payload is None:
        raise gr.Error(f'upload {what} first')
    name = payload.get('orig_name') or osp.basename(payload.get('path') or '') or 'the upload'
    try:
        return component.preprocess(component.data_model(**payload))
    except Exception as err:  # not an image, truncated, too large, SVG: PIL's or Gradio's error
        raise gr.Error(f'"{name}" is not an image this demo can read ({type(err).__name__}); '
                       f'upload a {IMAGE_TYPES} file') from err


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

    scale = float(model.logit_scale.detach().exp().clamp(max=100))

    def classify(payload, classes_text: str, k: float = 5):
        try:
            classes = parse_classes(classes_text)
        except ValueError as err:
            raise gr.Error(str(err)) from err
        image = read_upload(image_input, payload)
        inferencer = ZeroShotClassificationInferencer(model, classes=classes, templates=templates, topk=int(k))
        result = inferencer(image)[0]
        label = {name: score for name, score in zip(result['topk_classes'], result['topk_scores'])}
        table = [[rank, name, percent(p)] for rank, (name, p) in enumerate(label.items(), 1)]
        note = (f'Probabilities: softmax over the {len(classes)} classes of {inferencer.logit_scale:.2f} × cosine '
                f'similarity (the model\'s learned logit scale), averaged over {len(inferencer.templates)} '
                'prompt templates.')
        return label, table, note

    def run_search(query: str, k: float = topk):
        query = (query or '').strip()
        if not query:
            raise gr.Error('type a Chinese query, e.g. 海边的日落')
        note = truncation_note(model, query)
        if note:
            gr.Warning(note)
        search.topk = int(k)
        thumbs, table = _shown(search, search(query)[0]['matches'])
        return thumbs, table, note or f'The query fits the context length ({model.tokenizer.context_length}).'

    def run_image_search(payload, k: float = topk):
        image = read_upload(query_image, payload, 'a query image')
        similar.topk = int(k)
        return _shown(similar, similar(image)[0]['matches'])

    with gr.Blocks(title='Chinese CLIP') as demo:
        gr.Markdown('# Chinese CLIP: zero-shot classification and text-to-image search')
        with gr.Tab('Zero-shot classification'):
            with gr.Row():
                image_input = gr.Image(type='pil', label='image')
                with gr.Column():
                    classes = gr.Textbox(label='classes (comma separated)', value='猫, 狗, 汽车, 风景')
                    k_cls = gr.Slider(1, 20, value=5, step=1, label='top-k')
                    button = gr.Button('classify')
            label = gr.Label(label='prediction')
            cls_table = gr.Dataframe(headers=['rank', 'class', 'probability'], datatype=['number', 'str', 'str'],
                                     label='scores')
            cls_note = gr.Markdown(f'Probabilities: softmax at the model\'s learned logit scale ({scale:.2f}).')
            button.click(classify, [image_input, classes, k_cls], [label, cls_table, cls_note], api_name='classify',
                         preprocess=False)
        if search is not None:
            with gr.Tab('Text-to-image search'):
                query = gr.Textbox(label='query (Chinese)', value='海边的日落')
                size = len(search.search)
                k_search = gr.Slider(1, min(50, size), value=min(topk, size), step=1, label='results')
                go = gr.Button('search')
                thumbs = gr.Gallery(label=f'gallery of {size} images', columns=4)
                hits = gr.Dataframe(headers=RESULT_HEADERS, datatype=['number', 'str', 'str'], label='scores')
                query_note = gr.Markdown()
                go.click(run_search, [query, k_search], [thumbs, hits, query_note], api_name='search')
            with gr.Tab('Image-to-image search'):
                query_image = gr.Image(type='pil', label='query image')
                k_similar = gr.Slider(1, min(50, size), value=min(topk, size), step=1, label='results')
                go_similar = gr.Button('find similar images')
                similar_thumbs = gr.Gallery(label=f'gallery of {size} images', columns=4)
                similar_hits = gr.Dataframe(headers=RESULT_HEADERS, datatype=['number', 'str', 'str'],
                                            label='scores')
                go_similar.click(run_image_search, [query_image, k_similar], [similar_thumbs, similar_hits],
                                 api_name='search_image', preprocess=False)
    return demo


RESULT_HEADERS = ['rank', 'image', 'cosine similarity']


def _shown(inferencer, matches):
    """Thumbnails (when the gallery is known) and the rank / id / similarity table of matches."""
    thumbs = [(_thumbnail_source(inferencer.search.item(m)), f'#{rank} {m["id"]}  {m["score"]:.4f}')
              for rank, m in enumerate(matches, 1) if m.get('index') is not None]
    return thumbs, [[rank, str(m['id']), f'{m["score"]:.4f}'] for rank, m in enumerate(matches, 1)]


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
