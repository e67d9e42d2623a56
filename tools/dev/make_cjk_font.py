"""Write the CJK font the pictures use: Noto Sans CJK SC Regular (SIL OFL 1.1) cut to the characters a
caption can hold, so captions render on a server without CJK fonts from a file of about 2 MB.

    apt-get install fonts-noto-cjk && python tools/dev/make_cjk_font.py

Kept: printable ASCII, every GB2312 character (the 6,763 common simplified hanzi, punctuation, full-width
forms) and every single-character token of the shipped BERT vocab (what the tokenizer can read).
"""
import argparse
import os.path as osp
import shutil
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SOURCE = '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc'
SOURCE_FACE = 'Noto Sans CJK SC'
LICENSE = '/usr/share/doc/fonts-noto-cjk/copyright'
OUT_DIR = osp.join(REPO, 'cnclip_mm', 'visualization', 'cjk_font')


def caption_characters(vocab_file: str) -> set:
    chars = {chr(c) for c in range(0x20, 0x7F)}
    for high in range(0xA1, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                chars.add(bytes([high, low]).decode('gb2312'))
            except UnicodeDecodeError:
                continue
    with open(vocab_file, encoding='utf-8') as f:
        chars |= {tok for tok in (line.strip() for line in f) if len(tok) == 1 and ord(tok) > 0x7F}
    return chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', default=SOURCE, help='Noto Sans CJK .ttc or SC .otf')
    parser.add_argument('--out-dir', default=OUT_DIR)
    args = parser.parse_args()
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    if not osp.isfile(args.source):
        sys.exit(f'{args.source} does not exist: apt-get install fonts-noto-cjk, or pass --source')
    if args.source.endswith('.ttc'):
        faces = [f['name'].getDebugName(4) for f in TTCollection(args.source).fonts]
        if SOURCE_FACE not in faces:
            sys.exit(f'{args.source} has no face {SOURCE_FACE!r} (faces: {faces})')
        font = TTFont(args.source, fontNumber=faces.index(SOURCE_FACE))
    else:
        font = TTFont(args.source)
    options = subset.Options()
    options.layout_features = []  # horizontal captions need no vertical or locale substitutions
    options.hinting = False
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    chars = caption_characters(osp.join(REPO, 'cnclip_mm', 'models', 'vocab', 'vocab.txt'))
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    out = osp.join(args.out_dir, 'NotoSansCJKsc-Regular-subset.otf')
    font.save(out)
    if osp.isfile(LICENSE):
        shutil.copyfile(LICENSE, osp.join(args.out_dir, 'COPYRIGHT-noto-cjk.txt'))
    print(f'{out}: {len(chars)} characters, {osp.getsize(out) / 2**20:.1f} MiB')


if __name__ == '__main__':
    main()
