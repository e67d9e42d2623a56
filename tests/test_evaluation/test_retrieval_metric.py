"""RetrievalRecall and the chunked rank / top-k helpers on hand-made and random scores."""
import math

import pytest
import torch

from cnclip_mm.evaluation import RetrievalRecall, chunked_topk, recall_at_k, retrieval_ranks
from cnclip_mm.registry import METRICS
from cnclip_mm.structures.data_sample import DataSample

# 4 texts x 5 images. Positives: t0 -> {1}, t1 -> {2, 3}, t2 -> {0} (a 4-way tie), t3 -> none.
# Image 4 is listed by no text.
SIM = torch.tensor([
    [0.9, 0.8, 0.1, 0.0, 0.0],
    [0.5, 0.5, 0.3, 0.7, 0.0],
    [0.4, 0.4, 0.4, 0.4, 0.0],
    [0.2, 0.6, 0.9, 0.1, 0.0],
])
POS = [[1], [2, 3], [0], []]
# t2i: t0 rank 1 (img0 0.9 > 0.8); t1 rank 0 (best positive 0.7); t2 rank 3 (ties count against);
# i2t: img0 best positive t2=0.4, beaten by t0 0.9, t1 0.5 -> 2; img1 t0=0.8 -> 0;
#      img2 t1=0.3, beaten by t2 0.4, t3 0.9 -> 2; img3 t1=0.7 -> 0; img4 no positive -> -1.
T2I = [1, 0, 3, -1]
I2T = [2, 0, 2, 0, -1]


def test_ranks_hand_made():
    t2i, i2t = retrieval_ranks(similarity=SIM, positives=POS)
    assert t2i.tolist() == T2I
    assert i2t.tolist() == I2T
    # the same through features: text rows = scores, images = identity
    t2i_f, i2t_f = retrieval_ranks(SIM, torch.eye(5), POS, chunk_size=1)
    assert t2i_f.tolist() == T2I and i2t_f.tolist() == I2T


def test_recall_skips_or_counts_items_without_positive():
    recalls, skipped = recall_at_k(torch.tensor(T2I), (1, 2, 4))
    assert skipped == 1
    assert recalls == pytest.approx([100 / 3, 200 / 3, 100.0])
    recalls, missing = recall_at_k(torch.tensor(T2I), (1, 2, 4), count_missing=True)
    assert missing == 1 and recalls == pytest.approx([25.0, 50.0, 75.0])


def test_official_definition_counts_a_text_without_gallery_positive_as_a_miss(caplog):
    # 4 texts over images a..e: t3's only image 'zz' is not in the gallery. Official evaluation.py: a miss.
    gts = [['b'], ['c', 'd'], ['a'], ['zz']]
    official = RetrievalRecall.calculate(torch.eye(5), SIM, list('abcde'), gts, topk=(1, 2, 4))
    assert [official[f't2i_R@{k}'] for k in (1, 2, 4)] == pytest.approx([25.0, 50.0, 75.0])
    old = RetrievalRecall.calculate(torch.eye(5), SIM, list('abcde'), gts, topk=(1, 2, 4),
                                    missing_positive='ignore')
    assert [old[f't2i_R@{k}'] for k in (1, 2, 4)] == pytest.approx([100 / 3, 200 / 3, 100.0])
    # image->text is the same in both: image 'e' (listed by no text) is no query of the official annotation
    assert official['i2t_R@1'] == old['i2t_R@1'] == pytest.approx(50.0)
    metric = METRICS.build(dict(type='RetrievalRecall', topk=(1,), missing_positive='ignore'))
    assert metric.missing_positive == 'ignore' and RetrievalRecall().missing_positive == 'miss'
    with pytest.raises(ValueError, match="'miss' or 'ignore'"):
        RetrievalRecall(missing_positive='skip')


def test_calculate_known_answer_and_keys():
    image_ids = ['a', 'b', 'c', 'd', 'e']
    gts = [['b'], ['c', 'd'], ['a'], []]
    out = RetrievalRecall.calculate(torch.eye(5), SIM, image_ids, gts, topk=(1, 2, 3),
                                    missing_positive='ignore')
    assert out['t2i_R@1'] == pytest.approx(100 / 3)
    assert out['t2i_R@2'] == pytest.approx(200 / 3)
    assert out['t2i_R@3'] == pytest.approx(200 / 3)
    # i2t ranks over the 4 images with a text: [2, 0, 2, 0]
    assert out['i2t_R@1'] == pytest.approx(50.0)
    assert out['i2t_R@2'] == pytest.approx(50.0)
    assert out['i2t_R@3'] == pytest.approx(100.0)
    six = [out[k] for k in out if k != 'mean_recall']
    assert out['mean_recall'] == pytest.approx(sum(six) / 6)
    only = RetrievalRecall.calculate(torch.eye(5), SIM, image_ids, gts, topk=(1, 2, 3), t2i_only=True,
                                     missing_positive='ignore')
    assert set(only) == {'t2i_R@1', 't2i_R@2', 't2i_R@3', 'mean_recall'}
    assert only['mean_recall'] == pytest.approx((100 / 3 + 400 / 3) / 3)


def test_unknown_ids_and_no_labels():
    # an id absent from the gallery is ignored; a text left without positives is skipped ('ignore')
    # or a miss (official)
    gts = [['b', 'zz'], ['d'], ['a'], ['zz']]
    out = RetrievalRecall.calculate(torch.eye(5), SIM, list('abcde'), gts, topk=(1,), t2i_only=True,
                                    missing_positive='ignore')
    assert out['t2i_R@1'] == pytest.approx(100 / 3)
    out = RetrievalRecall.calculate(torch.eye(5), SIM, list('abcde'), gts, topk=(1,), t2i_only=True)
    assert out['t2i_R@1'] == pytest.approx(25.0)
    with pytest.raises(ValueError, match='no text has a ground-truth image'):
        RetrievalRecall.calculate(torch.eye(5), SIM, list('abcde'), [[], [], [], ['x']])


def _brute_force(sim, pos):
    t2i = []
    for i, row in enumerate(sim.tolist()):
        if not pos[i]:
            t2i.append(-1)
            continue
        best = max(row[j] for j in pos[i])
        t2i.append(sum(1 for j, v in enumerate(row) if j not in pos[i] and v >= best))
    i2t = []
    for j in range(sim.shape[1]):
        owners = [i for i in range(sim.shape[0]) if j in pos[i]]
        if not owners:
            i2t.append(-1)
            continue
        best = max(sim[i, j].item() for i in owners)
        i2t.append(sum(1 for i in range(sim.shape[0]) if i not in owners and sim[i, j].item() >= best))
    return t2i, i2t


def test_chunked_equals_one_shot_and_brute_force():
    g = torch.Generator().manual_seed(0)
    texts = torch.nn.functional.normalize(torch.randn(53, 16, generator=g), dim=1)
    images = torch.nn.functional.normalize(torch.randn(37, 16, generator=g), dim=1)
    pos = [sorted(set(torch.randint(0, 37, (int(n),), generator=g).tolist()))
           for n in torch.randint(0, 4, (53,), generator=g)]
    ref_t2i, ref_i2t = _brute_force(texts @ images.T, pos)
    for chunk in (1, 7, 53, None):
        t2i, i2t = retrieval_ranks(texts, images, pos, chunk_size=chunk)
        assert t2i.tolist() == ref_t2i
        assert i2t.tolist() == ref_i2t
    # quantised scores produce many ties: still chunk-independent
    q_texts = torch.round(texts * 2) / 2
    a = retrieval_ranks(q_texts, images.round(), pos, chunk_size=5)
    b = retrieval_ranks(q_texts, images.round(), pos)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()


def test_chunked_topk_matches_stable_sort():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(29, 8, generator=g).round()
    gal = torch.randn(41, 8, generator=g).round()  # integer scores: plenty of ties
    full_s, full_i = torch.sort(q @ gal.T, dim=1, descending=True, stable=True)
    for chunk in (1, 4, None):
        s, i = chunked_topk(q, gal, 5, chunk_size=chunk)
        assert torch.equal(i, full_i[:, :5])
        assert torch.allclose(s, full_s[:, :5])
    s, i = chunked_topk(q, gal, 100)
    assert i.shape == (29, 41)


def _samples(sim, gts):
    samples = []
    for j in range(sim.shape[1]):
        ds = DataSample(metainfo=dict(image_id=j))
        ds.image_feat = torch.eye(sim.shape[1])[j]
        samples.append(ds)
    for i in range(sim.shape[0]):
        ds = DataSample(metainfo=dict(text_id=100 + i, gt_image_ids=gts[i]))
        ds.text_feat = sim[i]
        samples.append(ds)
    return samples


def test_metric_process_evaluate_prefix_and_duplicates():
    metric = METRICS.build(dict(type='RetrievalRecall', topk=(1, 2, 3)))
    samples = _samples(SIM, POS)
    # image 0 seen twice (e.g. a padding duplicate): counted once
    batch = [s.to_dict() for s in samples] + [samples[0].to_dict()]
    metric.process(None, batch[:4])
    metric.process(None, batch[4:])
    assert len(metric.results) == len(batch)
    out = metric.evaluate(len(batch))
    assert out['retrieval/t2i_R@1'] == pytest.approx(25.0)  # t3 has no positive: a miss (official)
    assert out['retrieval/i2t_R@3'] == pytest.approx(100.0)
    assert not math.isnan(out['retrieval/mean_recall'])


def test_metric_rejects_samples_without_features():
    metric = RetrievalRecall()
    with pytest.raises(KeyError, match='neither image_feat nor text_feat'):
        metric.process(None, [DataSample(metainfo=dict(image_id=1)).to_dict()])


def test_repeated_positive_counts_once_and_bad_index():
    t2i, i2t = retrieval_ranks(similarity=SIM, positives=[[1, 1], [2, 3, 3], [0], []])
    assert t2i.tolist() == T2I and i2t.tolist() == I2T
    with pytest.raises(IndexError, match='outside the gallery'):
        retrieval_ranks(similarity=SIM, positives=[[5], [], [], []])
