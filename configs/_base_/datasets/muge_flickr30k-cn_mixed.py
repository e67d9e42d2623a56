# Mixing training sets: MUGE + Flickr30K-CN train splits in one ConcatDataset; validates on
# Flickr30K-CN valid. Any dataset types can be mixed (e.g. a TSV set and an LMDB one).
_base_ = ['./flickr30k-cn.py']
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type='ImageTextTSVDataset', data_root='data/muge', split='train',
                 pipeline={{_base_.train_pipeline}}),
            dict(type='ImageTextLMDBDataset', data_root='data/flickr30k-cn', split='train',
                 pipeline={{_base_.train_pipeline}}),
        ]))
