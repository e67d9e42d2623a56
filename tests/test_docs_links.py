"""Every docs/ page and heading that code or docs point a user to exists: ``docs/X.md#anchor`` and
``docs/X.md, "Heading"`` in code, messages and docs, and ``(X.md#anchor)`` / ``(#anchor)`` links in docs."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITE = re.compile(r'docs/([\w-]+\.md)(?:#([\w-]+)|,? "([^"]+)")?')
LINK = re.compile(r'\]\(((?:docs/)?[\w-]+\.md)?#([\w-]+)\)')


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def headings(path: Path) -> dict:
    """``{anchor: heading}`` of a markdown file, code blocks left out."""
    found, fenced = {}, False
    for line in path.read_text(encoding='utf-8').splitlines():
        if line.startswith('```'):
            fenced = not fenced
        elif not fenced and line.startswith('#'):
            title = line.lstrip('#').strip()
            found[slug(title)] = title
    return found


def _sources():
    for pattern in ('cnclip_mm/**/*.py', 'tools/**/*.py', 'tools/**/*.sh', 'benchmarks/*.py', 'configs/**/*.py',
                    'docs/*.md', 'README.md'):
        yield from REPO.glob(pattern)


def test_every_cited_doc_and_heading_exists():
    missing = []
    for source in _sources():
        text = source.read_text(encoding='utf-8')
        cites = [(m.group(1), m.group(2), m.group(3)) for m in CITE.finditer(text)]
        if source.suffix == '.md':
            for m in LINK.finditer(text):
                target = m.group(1) or source.name
                cites.append((Path(target).name, m.group(2), None))
        for name, anchor, title in cites:
            doc = REPO / 'docs' / name if name != 'README.md' else REPO / 'README.md'
            where = f'{source.relative_to(REPO)}: docs/{name}'
            if not doc.is_file():
                missing.append(f'{where} does not exist')
            elif anchor and anchor not in headings(doc):
                missing.append(f'{where}#{anchor}: no such heading')
            elif title and slug(title) not in headings(doc):
                missing.append(f'{where}, "{title}": no such heading')
    assert not missing, '\n'.join(missing)


def test_slug_follows_github():
    assert slug('Shards (WebDataset streaming)') == 'shards-webdataset-streaming'
    assert slug('Retrieval recall (`RetrievalRecall`)') == 'retrieval-recall-retrievalrecall'
    assert slug('Your own data') == 'your-own-data'
