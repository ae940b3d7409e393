"""Fixes for what a reader's browser shows (tools/check_site.py fails on each).

- sphinx-thebe registers its inline configuration script twice (once with filename None, once
  with ""), so a page declares `const THEBE_JS_URL` twice: a JavaScript SyntaxError. Keep the
  first copy of each script.
- An image without alt text (every figure glued or drawn by a cell) gets its file path as
  alt from docutils, which a screen reader reads out. Give it the figure's caption, or say it
  is the figure the cell above draws.
- With no `default_mode`, the theme's first-visit script sets an empty colour mode and logs
  "Got invalid theme mode". Default the page's `default_mode` to "auto" (follow the system).
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", None) or ""),  # None and "" both mean inline
               tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def _default_mode(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def _alt_text(app, doctree, docname):
    from docutils import nodes

    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        parent = image.parent
        while parent is not None and not isinstance(parent, nodes.figure):
            parent = parent.parent
        captions = list(parent.findall(nodes.caption)) if parent is not None else []
        text = " ".join(captions[0].astext().split()) if captions else ""
        chinese = str(app.config.language or "").startswith("zh")
        image["alt"] = text or ("上方代码单元绘制的图" if chinese
                                else "Figure drawn by the code cell above")


def setup(app):
    app.connect("doctree-resolved", _alt_text)
    app.connect("html-page-context", _default_mode, priority=900)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
