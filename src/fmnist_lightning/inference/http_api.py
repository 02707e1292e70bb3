"""The HTTP API of ``python -m fmnist_lightning.serve``: a LitServe ``LitAPI`` that turns a
request into 28x28 pixels (prepared exactly as ``predict`` prepares files), classifies the
requests LitServe gathers into one batch in one pass, and answers ``predict``'s row fields.

A request is one multipart upload (the field ``file``, and ``pixels=true`` to get the 28x28
image back) or JSON ``{"images": [base64 file | 28x28 pixel array, ...], "pixels": false}``.
LitServe batches requests, not images: a request of k images joins the batch whole (its
answer waits for none of it to come later), so a batch holds at most
``max_batch_size * MAX_IMAGES_PER_REQUEST`` images, which the classifier splits into its own
batches.

A refused request gets a 4xx JSON ``{"detail": "<one sentence>"}`` and leaves the others of
its batch alone: LitServe fails a whole batch when one request's ``decode_request`` raises, so
a refusal travels through the batch as a value and ``encode_response`` answers it.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from fmnist_lightning.inference.classifier import (
    Classifier,
    as_pixels,
    pixels_from_array,
    prediction_rows,
)
from fmnist_lightning.inference.images import IMAGE_SIZE, ImageReadError, load_image
from fmnist_lightning.models.tta import TTA

MAX_IMAGES_PER_REQUEST = 64
# A server decodes what strangers send: a 16-megapixel photo (~48 MB as RGB) at most, a
# fifth of what predict accepts from its own user (Pillow's ~89 megapixels).
MAX_IMAGE_PIXELS = 16_000_000
MAX_REQUEST_BYTES = 10_000_000
# Batching: up to this many requests in one pass, waiting at most this many seconds for them.
# Chosen on requests/s at 1, 8 and 64 clients (docs/benchmarks/serve_load.py, 2-core EPYC):
# 2 ms doubles them at 8 clients and, unlike 5-10 ms, costs a lone client nothing.
MAX_BATCH_SIZE = 64
BATCH_TIMEOUT = 0.002
PAGE = Path(__file__).with_name("page.html")
HOW = "send multipart form data with the image file in the field 'file', or JSON"
JSON_SHAPE = '{"images": [<base64 image file or 28x28 pixel array>, ...], "pixels": false}'


class Refused(Exception):
    """A request the API refuses: its HTTP status and one sentence."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Decoded:
    """One request: its images as (k, 28, 28) pixels, or why it was refused."""

    pixels: torch.Tensor | None = None
    single: bool = False  # a file upload: answered by one row, not a list
    with_pixels: bool = False
    refused: Refused | None = None


def image_from_bytes(data: bytes, where: str, max_pixels: int) -> torch.Tensor:
    if not data:
        raise Refused(f"{where} is empty: send the image file's bytes.")
    try:
        return torch.from_numpy(load_image(data, max_pixels=max_pixels))
    except ImageReadError as error:
        raise Refused(f"{where} cannot be read as an image: {error.reason}.") from None


def image_from_array(value: list, where: str) -> torch.Tensor:
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        array = np.asarray(None)
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE) or array.dtype.kind not in "iuf":
        got = f"shape {array.shape} of {array.dtype}" if array.dtype.kind != "O" else "ragged lists"
        why = f"{where} must be 28x28 numbers (ints 0-255 or floats 0-1), got {got}"
        raise Refused(f"{why}; resize it, or send the image file as base64.")
    try:
        return pixels_from_array(array)
    except ValueError as error:  # values out of range, NaN
        message = str(error).split(";")[0]
        raise Refused(f"{where}: {message}; send ints 0-255 or floats 0-1.") from None


def image_from_json(value: Any, where: str, max_pixels: int) -> torch.Tensor:
    if isinstance(value, list):
        return image_from_array(value, where)
    if not isinstance(value, str):
        kind = type(value).__name__
        raise Refused(f"{where} is of type {kind}: send a base64 image file or a 28x28 array.")
    if value.startswith("data:") and ";base64," in value:  # a data URL (FileReader.readAsDataURL)
        value = value.partition(",")[2]
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:  # never a file name: the server opens no file a client names
        why = f"{where} is not base64: send the image file's bytes as base64, not its name or path"
        raise Refused(f"{why}.") from None
    return image_from_bytes(data, where, max_pixels)


def decode_json(payload: Any, max_pixels: int) -> Decoded:
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise Refused(f"The JSON must be an object {JSON_SHAPE}.")
    if unknown := sorted(set(payload) - {"images", "pixels"}):
        raise Refused(f"Unknown keys {unknown} in the JSON: send {JSON_SHAPE}.")
    images, with_pixels = payload["images"], payload.get("pixels", False)
    if not isinstance(with_pixels, bool):
        raise Refused(f"'pixels' must be true or false, got {json.dumps(with_pixels)}.")
    if not images:
        raise Refused("'images' is empty: send at least one image.")
    if len(images) > MAX_IMAGES_PER_REQUEST:
        why = f"{len(images)} images in one request, over the limit of {MAX_IMAGES_PER_REQUEST}"
        raise Refused(f"{why}: send them in several requests.", status=413)
    pixels = [image_from_json(image, f"images[{i}]", max_pixels) for i, image in enumerate(images)]
    return Decoded(as_pixels(pixels), with_pixels=with_pixels)


def decode_form(form: FormData, max_pixels: int) -> Decoded:
    upload = form.get("file")
    if isinstance(upload, str):  # a text field: perhaps a path, which the server never opens
        raise Refused("The field 'file' holds text, not a file: upload the image file's bytes.")
    if not isinstance(upload, UploadFile):
        raise Refused(f"The form has no field 'file': {HOW}.")
    pixels = image_from_bytes(upload.file.read(), "The uploaded file", max_pixels)
    with_pixels = str(form.get("pixels", "false")).lower() in ("true", "1", "on")
    return Decoded(pixels[None], single=True, with_pixels=with_pixels)


def pixel_rows(pixels: torch.Tensor) -> list[list[list[int]]]:
    """(k, 28, 28) pixels as the uint8 images the network saw, floats in [0, 1] rounded."""
    if pixels.dtype != torch.uint8:
        pixels = (pixels * 255.0).round().to(torch.uint8)
    return pixels.tolist()


class ClassifierAPI(ls.LitAPI):
    """Classifies the images of a batch of requests in one pass of ``Classifier.probabilities``."""

    def __init__(
        self,
        classifier: Classifier,
        tta: TTA,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_timeout: float = BATCH_TIMEOUT,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.classifier, self.tta, self.max_image_pixels = classifier, tta, max_image_pixels

    def setup(self, device: str) -> None:
        self.classifier.to(device)

    def decode_request(self, request) -> Decoded:
        # Unannotated: LitServe would read an annotation as the endpoint's type of body.
        try:
            if isinstance(request, FormData):
                return decode_form(request, self.max_image_pixels)
            return decode_json(request, self.max_image_pixels)
        except Refused as refused:
            return Decoded(refused=refused)

    def predict(self, x: Decoded | list[Decoded]) -> Any:
        # LitServe's default batch and unbatch keep a list of Decoded as it is: joined here.
        # Batching off (max_batch_size 1), it hands one request, not a list.
        return self.classify(x) if isinstance(x, list) else self.classify([x])[0]

    def classify(self, requests: list[Decoded]) -> list[tuple[Decoded, list[dict[str, Any]]]]:
        accepted = [request.pixels for request in requests if request.refused is None]
        probabilities = self.classifier.probabilities(as_pixels(accepted), tta=self.tta)
        rows = iter(prediction_rows(probabilities, self.classifier.class_names))
        answers = []
        for request in requests:
            count = 0 if request.refused else len(request.pixels)
            answers.append((request, [next(rows) for _ in range(count)]))
        return answers

    def encode_response(self, output: tuple[Decoded, list[dict[str, Any]]]) -> Any:
        request, rows = output
        if request.refused:
            status, message = request.refused.status, str(request.refused)
            return JSONResponse({"detail": message}, status_code=status)
        if request.with_pixels:
            seen = pixel_rows(request.pixels)
            rows = [row | {"pixels": p} for row, p in zip(rows, seen, strict=True)]
        return rows[0] if request.single else rows


async def refusal(request: Request, error: HTTPException) -> Response:
    """LitServe's own refusals in one sentence: a body over the limit (its 413), and a body it
    could not parse, which it answers 500 (the cause, the parser's error, says 4xx)."""
    cause = error.__cause__
    if error.status_code == 413:
        limit = request.app.state.max_request_bytes
        why = f"The request body is over the limit of {limit:,} bytes"
        error = HTTPException(413, f"{why}: send fewer or smaller images.")
    elif error.status_code == 500 and isinstance(cause, HTTPException):  # a broken multipart
        error = HTTPException(cause.status_code, f"The form cannot be parsed: {cause.detail}")
    elif error.status_code == 500 and isinstance(cause, ValueError):  # not JSON, not UTF-8
        error = HTTPException(400, f"The body is neither a form nor JSON: {HOW} {JSON_SHAPE}.")
    return await http_exception_handler(request, error)


def add_page_and_refusals(app: FastAPI, max_request_bytes: int) -> None:
    """``GET /``: the page (in place of LitServe's "litserve running"), and :func:`refusal`."""
    app.router.routes = [route for route in app.router.routes if getattr(route, "path", "") != "/"]
    page = PAGE.read_text()
    app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)
    app.state.max_request_bytes = max_request_bytes
    app.add_exception_handler(HTTPException, refusal)
