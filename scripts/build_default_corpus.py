"""Build the built-in default corpus from the docstrings of Python's own standard library.

Run once by a maintainer; the output ships inside the package (no download at run time):
    python scripts/build_default_corpus.py interpretability_workbench/data/default_corpus.jsonl
Each line is {"text": ..., "source": "module.qualname"}; documents are deduplicated, short ones dropped.
"""
from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings

MODULES = """abc argparse array ast asyncio base64 bisect builtins bz2 calendar cmath codecs collections
concurrent.futures configparser contextlib copy csv ctypes dataclasses datetime decimal difflib dis
email enum fileinput fnmatch fractions ftplib functools getopt gettext glob gzip hashlib heapq hmac html
html.parser http.client http.server imaplib importlib inspect io ipaddress itertools json locale logging
lzma mailbox math mimetypes multiprocessing numbers operator optparse os pathlib pickle pkgutil platform
plistlib poplib pprint profile pstats queue quopri random re sched secrets select selectors shelve shlex
shutil signal smtplib socket socketserver sqlite3 ssl stat statistics string struct subprocess symtable
sys sysconfig tarfile tempfile textwrap threading time timeit token tokenize trace traceback tracemalloc
types typing unittest urllib.parse urllib.request uuid warnings wave weakref xml.dom.minidom
xml.etree.ElementTree zipfile zipimport zlib""".split()


def docs_of(mod_name: str):
    mod = importlib.import_module(mod_name)
    seen = set()
    doc = inspect.getdoc(mod)
    if doc:
        yield mod_name, doc
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or id(obj) in seen:
            continue
        seen.add(id(obj))
        if getattr(obj, "__module__", mod_name) not in (mod_name, None) and not inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            d = inspect.getdoc(obj)
            if d:
                yield f"{mod_name}.{name}", d
            if inspect.isclass(obj):
                for mname, meth in sorted(vars(obj).items()):
                    if mname.startswith("_"):
                        continue
                    md = inspect.getdoc(meth) if callable(meth) else None
                    if md:
                        yield f"{mod_name}.{name}.{mname}", md


def main(out: str) -> None:
    warnings.simplefilter("ignore")
    seen_text: set[str] = set()
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for m in MODULES:
            try:
                for src, text in docs_of(m):
                    text = text.strip()
                    if len(text) < 80 or text in seen_text:
                        continue
                    seen_text.add(text)
                    f.write(json.dumps({"text": text, "source": src}) + "\n")
                    n += 1
            except Exception as e:  # a module missing on this platform
                print(f"skip {m}: {e}", file=sys.stderr)
    print(f"{n} documents -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
