# An ELEVATER zero-shot set (e.g. data/elevater/cifar-10): {split}/{class_index:03d}/*.jpg and
# label_cn.txt (one Chinese class name per line). Point data_root at the set in a leaf.
_base_ = ['./cifar100.py']
data_root = 'data/elevater/cifar-10'
test_dataloader = dict(
    dataset=dict(_delete_=True, type='ImageFolderZeroShotDataset', data_root=data_root,
                 split='test', test_mode=True, pipeline={{_base_.zeroshot_pipeline}}))
val_dataloader = test_dataloader
