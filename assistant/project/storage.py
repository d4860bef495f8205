"""Static files in production: WhiteNoise's compressed, hashed storage, rewriting the chat's
ES module imports to hashed names too.

Django rewrites ``import … from "./state.js";`` to ``./state.<hash>.js`` only when
``support_js_module_import_aggregation`` is on. With it, every module the page loads is a
hashed, forever-cacheable file, so a deploy can never leave a browser running one release's
``main.js`` against another release's ``state.js``. (It needs imports without cycles, which
tests/js/ checks.)
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
