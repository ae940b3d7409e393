"""The Chinese edition: what Sphinx's gettext translation needs to work on executed notebooks.

Both editions are built from the same MyST notebooks (tools/build_book.py); this extension
makes three things hold in both:

- **Outputs are not translated.** What a code cell prints (tables, worked solutions, token
  lists) is the code's, not the prose's: the same in both editions, and the same as a
  learner sees when running the Chinese notebook. Every node inside a cell's output is marked
  untranslatable before Sphinx's translation transform runs, so it never enters a catalog.
- **Glued values survive translation.** Sphinx parses each translated paragraph as a separate
  little document whose source is ``<page>:<line>:<translated>``; myst-nb's glue roles look
  for the notebook's renderer on that document, find none, and would render an empty value
  with "No key ... found in glue data for this document". While a page is parsed, its glue
  lookups remember the page's notebook renderer; a lookup from a translated paragraph falls
  back to the renderer of the page it came from, so the Chinese sentence shows the very value
  the English one does (tests/test_translation.py compares them on every page).
- **A language switch on every page.** Each page links to the same page in the other edition
  (English at the site root, Chinese under ``zh/``): a button in the article header, and a
  ``<link rel="alternate" hreflang>`` for search engines.

The glue fallback leans on myst-nb's internals (``retrieve_glue_data``, imported by name into
its ``roles`` and ``directives`` modules); requirements.txt pins myst-nb, and the test fails if
an upgrade breaks it.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

_TRANSLATED_SOURCE = re.compile(r"^(?P<path>.+?):(?P<line>\d+|None):<translated>$")
# source path of a page -> the notebook renderer that holds its glue data
_RENDERERS: dict[str, object] = {}
# Set by `course_placeholder_glue = True` (tools/build_book.py --no-execute): with no outputs
# at all, every glued value is "0", so a glued figure still has its caption for the catalogs.
_PLACEHOLDERS = {"on": False}

ZH = "zh"           # the Chinese edition's folder under the English site
FOOTER_ZH = ('<p>本书每一页上的每一个数字，都由该页的代码计算得出；参见'
             '<a href="intro.html#how-the-numbers-are-checked">数字如何核验</a>。</p>')
LANGUAGES = {"en": "English", "zh_CN": "中文"}


def _is_chinese(config) -> bool:
    return str(config.language or "").lower().startswith("zh")


class MarkOutputsUntranslatable(SphinxTransform):
    """Keep every node inside a code cell's output out of the catalogs, and let every Markdown
    table in (runs before Sphinx's Locale transform)."""

    default_priority = 10   # sphinx.transforms.i18n.Locale runs at 20

    def apply(self, **kwargs):
        # A Markdown table inside a directive (an erratum's dropdown) comes out of MyST with
        # cells that record no source, and Sphinx skips a node without one: give each cell its
        # table's source and line, so that the table is translated like any other.
        for table in self.document.findall(nodes.table):
            if not table.source:
                continue
            for cell in table.findall(nodes.paragraph):
                if not cell.source:
                    cell.source, cell.line = table.source, table.line
        for container in self.document.findall(nodes.container):
            if "cell_output" not in container.get("classes", []):
                continue
            for node in container.findall(nodes.Element):
                if isinstance(node, (nodes.TextElement, nodes.image)):
                    node["translatable"] = False


def _with_fallback(retrieve):
    """Wrap myst-nb's glue lookup so that a translated paragraph finds its page's data."""
    if getattr(retrieve, "_course_fallback", False):
        return retrieve

    def lookup(document, key):
        source = str(document.get("source", "") or "")
        if "nb_renderer" in document:
            _RENDERERS[source] = document["nb_renderer"]
            if _PLACEHOLDERS["on"]:
                from myst_nb.core.variables import RetrievalError
                from myst_nb.ext.glue.utils import VariableOutput

                try:
                    return retrieve(document, key)
                except RetrievalError:
                    return VariableOutput(data={"text/plain": "0"}, metadata={},
                                          nb_renderer=document["nb_renderer"], vtype="glue")
            return retrieve(document, key)
        match = _TRANSLATED_SOURCE.match(source)
        renderer = _RENDERERS.get(match["path"]) if match else None
        if renderer is None:
            return retrieve(document, key)
        document.attributes["nb_renderer"] = renderer
        try:
            return retrieve(document, key)
        finally:
            del document.attributes["nb_renderer"]

    lookup._course_fallback = True
    return lookup


def _patch_glue_lookup():
    from myst_nb.ext.glue import directives, roles, utils

    for module in (roles, directives):
        module.retrieve_glue_data = _with_fallback(utils.retrieve_glue_data)


def other_edition_href(pagename: str, chinese: bool) -> str:
    """The relative link from `pagename` in one edition to the same page in the other."""
    if not pagename or ".." in pagename.split("/"):
        raise ValueError(f"not a page name: {pagename!r}")
    depth = pagename.count("/")
    up = "../" * depth
    if chinese:     # zh/book/x.html -> book/x.html: one more level up
        return f"{up}../{pagename}.html"
    return f"{up}{ZH}/{pagename}.html"


def _language_switch(app, pagename, templatename, context, doctree):
    chinese = _is_chinese(app.config)
    href = other_edition_href(pagename, chinese)
    context["course_other_edition"] = {
        "href": href,
        "label": "English" if chinese else "中文",
        "hreflang": "en" if chinese else "zh-CN",
        "title": "Read this page in English" if chinese else "阅读本页的中文版",
    }
    link = (f'<link rel="alternate" hreflang="{context["course_other_edition"]["hreflang"]}" '
            f'href="{href}" />\n')
    context["metatags"] = context.get("metatags", "") + link


def _configure(app, config):
    _PLACEHOLDERS["on"] = bool(config.course_placeholder_glue)
    templates = str(Path(__file__).with_name("templates"))
    if templates not in config.templates_path:
        config.templates_path.append(templates)
    options = dict(config.html_theme_options or {})
    end = options.get("article_header_end") or ["article-header-buttons.html"]
    if isinstance(end, str):
        end = [end]
    if "language-switch.html" not in end:
        end = ["language-switch.html", *end]
    options["article_header_end"] = end
    if _is_chinese(config):
        # The Chinese pages' launch buttons open the Chinese notebooks (zh/book/*.md, made by
        # `make notebooks-zh` and kept current by tests/test_translation.py).
        options["path_to_docs"] = ZH
        if options.get("extra_footer"):
            options["extra_footer"] = FOOTER_ZH
    config.html_theme_options = options


def setup(app):
    _patch_glue_lookup()
    app.add_config_value("course_placeholder_glue", False, "env")
    app.add_transform(MarkOutputsUntranslatable)
    app.connect("config-inited", _configure)
    # before the theme drops header templates that render empty (pydata-sphinx-theme, 500)
    app.connect("html-page-context", _language_switch, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
