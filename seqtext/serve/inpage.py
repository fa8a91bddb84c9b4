"""GET /v1/models/{name}/export/{file}: a language model's export, for the keyboard that runs in the page.

The page's "in the page" switch runs `seqtext complete`'s keyboard in the browser (static/keyboard.js)
from the files `seqtext export` writes (docs/export.md), less the ONNX graphs: keyboard.json,
vocab.json, weights.safetensors and, when the run has them, ngram.safetensors and lexicon.safetensors.
They are built from the loaded run on its model thread the first time they are asked for, and kept.
The file name is only looked up among those names, so nothing a request sends can name a path.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from seqtext.export import PAGE_FILES, keyboard_files
from seqtext.serve.guards import ApiError
from seqtext.serve.hosted import KINDS, Hosted

MEDIA_TYPES = {".json": "application/json", ".safetensors": "application/octet-stream"}


def add_export_files(api: APIRouter, hosted: dict[str, Hosted]) -> None:
    """The route that hands a language model's export files to the page."""
    built: dict[str, dict[str, bytes]] = {}  # model name → its files, once built

    @api.get(
        "/models/{name}/export/{file}",
        tags=["keyboard"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}, "application/json": {}}}},
    )
    async def export_file(name: str, file: str) -> Response:
        """One file of the model's export (docs/export.md), without the ONNX graphs: what the page needs to
        run the keyboard in the browser. 404 for a file the model has not (a keyboard without an n-gram)."""
        model = hosted.get(name)
        if model is None:
            raise ApiError(404, "unknown_model", f"unknown model {name!r}; this server has: {', '.join(hosted)}")
        if model.kind != "lm":
            raise ApiError(
                409, "wrong_kind", f"model {name!r} is a {KINDS[model.kind]}; only a keyboard runs in the page"
            )
        if model.completer is None:
            raise ApiError(409, "wrong_kind", f"model {name!r} cannot complete: {model.completer_error}")
        if file not in PAGE_FILES:
            raise ApiError(
                404, "not_found", f"no file {file!r} in an export for the page; there are: {', '.join(PAGE_FILES)}"
            )
        if name not in built:
            built[name] = await model.run(keyboard_files, model.loaded)  # on the model thread: not beside a step
        content = built[name].get(file)
        if content is None:
            raise ApiError(404, "not_found", f"model {name!r} has no {file} (its export has: {', '.join(built[name])})")
        media_type = MEDIA_TYPES[file[file.rfind(".") :]]
        return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})
