"""``python -m fmnist_lightning.serve``: the HTTP API served from this process (uvicorn in a
thread, LitServe's worker started by its test helper), every refused request followed by a good
one; the real command over HTTP; the page in a real headless browser. The client is the
standard library's (urllib)."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from litserve.utils import wrap_litserve_start
from PIL import Image
from torchvision.datasets import FashionMNIST

from fmnist_lightning import serve
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.inference.images import load_image
from fmnist_lightning.predict import main as predict_main
from helpers.commands import run_command

FIELDS = {"class_index", "class", "confidence", "probabilities"}
MAX_REQUEST_BYTES = 300_000
MAX_IMAGE_PIXELS = 1_000_000
GRID = [[0] * 28] * 28  # a black 28x28 image as JSON


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def test_images(synthetic_root) -> np.ndarray:
    return FashionMNIST(str(synthetic_root), train=False).data[:6].numpy()


@pytest.fixture(scope="module")
def photos(test_images, tmp_path_factory) -> list[Path]:
    """Image files as a client has them: a grey PNG, a light-background RGB JPEG, a large RGBA."""
    folder = tmp_path_factory.mktemp("photos")
    light = Image.fromarray(255 - test_images[1]).resize((300, 200))
    files = [folder / "grey.png", folder / "light.jpg", folder / "rgba.png"]
    Image.fromarray(test_images[0]).save(files[0])
    light.convert("RGB").save(files[1], quality=90)
    Image.fromarray(test_images[2]).resize((90, 90)).convert("RGBA").save(files[2])
    return files


class Client:
    """POST and GET against a base URL; an answer is (status, body: JSON or text)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, path: str, body: bytes | None = None, content_type: str = "") -> tuple:
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(self.base + path, body, headers)
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as error:  # a 4xx or 5xx answer
            response = error
        with response:
            kind, text = response.headers["Content-Type"], response.read()
        return response.status, json.loads(text) if kind == "application/json" else text.decode()

    def post_json(self, body: object) -> tuple:
        return self.request("/predict", json.dumps(body).encode(), "application/json")

    def post_form(self, **fields: bytes | str) -> tuple:
        """multipart/form-data: bytes as a file upload, text as a plain field."""
        boundary, parts = uuid.uuid4().hex, []
        for name, value in fields.items():
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
            if isinstance(value, bytes):
                head += '; filename="image"\r\nContent-Type: application/octet-stream'
            data = value if isinstance(value, bytes) else value.encode()
            parts.append(f"{head}\r\n\r\n".encode() + data)
        body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
        return self.request("/predict", body, f"multipart/form-data; boundary={boundary}")


@contextmanager
def listening(app) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of this process on a free port; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    """The API of ``serve CKPT --tta flip`` with small limits, batching on."""
    args = serve.parse_arguments(
        [str(tiny_checkpoint), "--tta", "flip", "--max-batch-size", "4", "--batch-timeout", "0.05"]
        + ["--max-request-bytes", str(MAX_REQUEST_BYTES)]
        + ["--max-image-pixels", str(MAX_IMAGE_PIXELS)]
    )
    with wrap_litserve_start(serve.build_server(args)) as server, listening(server.app) as base:
        wait_until_healthy(base)  # the worker's start; a request waiting 30 s gets a 504
        yield Client(base)


def upload(client: Client, data: bytes, **fields: str) -> tuple:
    return client.post_form(file=data, **fields)


def predicted_by_command(files: list[Path], checkpoint: Path, tmp_path, capsys) -> list[dict]:
    output = tmp_path / "rows.json"
    argv = [str(checkpoint), *map(str, files), "--tta", "flip", "-o", str(output)]
    assert run_command(lambda: predict_main(argv), capsys)[0] == 0
    return json.loads(output.read_text())


def assert_same_rows(served: list[dict], predicted: list[dict]) -> None:
    for answer, row in zip(served, predicted, strict=True):
        assert set(answer) >= FIELDS and answer["class"] == row["class"]
        assert answer["class_index"] == row["class_index"]
        assert list(answer["probabilities"]) == list(CLASS_NAMES)
        got, expected = (np.array(list(r["probabilities"].values())) for r in (answer, row))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_uploads_get_predicts_rows_and_the_pixels_the_network_saw(
    client, photos, tiny_checkpoint, tmp_path, capsys
):
    answers = []
    for photo in photos:
        status, answer = upload(client, photo.read_bytes(), pixels="true")
        assert status == 200
        np.testing.assert_array_equal(np.array(answer.pop("pixels")), load_image(photo))
        answers.append(answer)
    assert_same_rows(answers, predicted_by_command(photos, tiny_checkpoint, tmp_path, capsys))
    assert "pixels" not in upload(client, photos[0].read_bytes())[1]


def test_json_images_as_base64_and_arrays_get_a_list_of_rows(
    client, photos, test_images, tiny_checkpoint, tmp_path, capsys
):
    as_base64 = [base64.b64encode(photo.read_bytes()).decode() for photo in photos]
    as_base64[1] = f"data:image/png;base64,{as_base64[1]}"  # as a browser's FileReader gives it
    arrays = [test_images[3].tolist(), (test_images[4] / 255.0).tolist()]
    status, answers = client.post_json({"images": as_base64 + arrays, "pixels": True})
    assert status == 200
    assert len(answers) == 5 and answers[4]["pixels"] == test_images[4].tolist()
    files = [*photos, tmp_path / "a.png", tmp_path / "b.png"]
    for file, pixels in zip(files[3:], test_images[3:5], strict=True):
        file.write_bytes(png_bytes(pixels))
    assert_same_rows(answers, predicted_by_command(files, tiny_checkpoint, tmp_path, capsys))


def test_concurrent_requests_batched_together_get_their_own_answers(client, test_images):
    """Requests of 1 to 4 images, and a refused one, sent at once (batches of up to 4)."""
    bodies = [{"images": [image.tolist() for image in test_images[: 1 + i % 4]]} for i in range(8)]
    bodies[3] = {"images": [GRID[:27]]}
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(client.post_json, bodies))
    alone = client.post_json({"images": [image.tolist() for image in test_images[:4]]})[1]
    for i, (status, rows) in enumerate(answers):
        if i == 3:
            assert status == 400 and "shape (27, 28)" in rows["detail"]
            continue
        assert status == 200 and len(rows) == 1 + i % 4
        assert_same_rows(rows, alone[: len(rows)])


def truncated_png(test_images) -> bytes:
    data = png_bytes(test_images[0])
    return data[: len(data) // 2]


BAD_UPLOADS = {  # the upload, the status, words of the answer
    "not an image": (lambda images: b"hello, world", 400, "not an image format"),
    "empty file": (lambda images: b"", 400, "is empty"),
    "truncated file": (truncated_png, 400, "corrupt, truncated"),
    "decompression bomb": (
        lambda images: png_bytes(np.zeros((1001, 1000), np.uint8)),
        400,
        "over the limit of 1,000,000 pixels",
    ),
    "oversized body": (lambda images: b"\0" * (MAX_REQUEST_BYTES + 1), 413, "300,000 bytes"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_a_refused_upload_is_one_sentence_and_the_server_keeps_serving(client, test_images, case):
    make, status, words = BAD_UPLOADS[case]
    refused_status, answer = upload(client, make(test_images))
    assert refused_status == status and words in answer["detail"]
    assert answer["detail"].endswith(".") and "\n" not in answer["detail"]
    assert upload(client, png_bytes(test_images[0]))[0] == 200


BAD_JSON = {  # the JSON body, the status, words of the answer
    "no images key": ({"image": [GRID]}, 400, "must be an object"),
    "unknown key": ({"images": [GRID], "pixel": True}, 400, "Unknown keys ['pixel']"),
    "images not a list": ({"images": GRID[0][0]}, 400, "must be an object"),
    "no images": ({"images": []}, 400, "is empty"),
    "too many images": ({"images": [GRID] * 65}, 413, "over the limit of 64"),
    "pixels not a boolean": ({"images": [GRID], "pixels": "yes"}, 400, "true or false"),
    "wrong shape": ({"images": [GRID[:27]]}, 400, "got shape (27, 28)"),
    "ragged rows": ({"images": [[[0] * 28] * 27 + [[0] * 3]]}, 400, "ragged"),
    "strings": ({"images": [[["a"] * 28] * 28]}, 400, "28x28 numbers"),
    "booleans": ({"images": [[[True] * 28] * 28]}, 400, "28x28 numbers"),
    "out of range": ({"images": [[[300] * 28] * 28]}, 400, "values in [300, 300]"),
    "a number": ({"images": [7]}, 400, "images[0] is of type int"),
    "a path": ({"images": ["/etc/passwd"]}, 400, "not base64"),
    "base64 of no image": ({"images": [base64.b64encode(b"text").decode()]}, 400, "not an image"),
}


@pytest.mark.parametrize("case", BAD_JSON)
def test_refused_json_is_one_sentence_and_the_server_keeps_serving(client, test_images, case):
    body, status, words = BAD_JSON[case]
    refused_status, answer = client.post_json(body)
    assert refused_status == status and words in answer["detail"]
    assert answer["detail"].endswith(".")
    good_status, rows = client.post_json({"images": [test_images[0].tolist()]})
    assert good_status == 200 and len(rows) == 1


BAD_BODIES = {  # how to send it, words of the answer
    "broken JSON": (lambda c: c.request("/predict", b"{not", "application/json"), "neither"),
    "a raw image": (lambda c: c.request("/predict", b"\x89PNG\r\n", "image/png"), "neither"),
    "a path in the file field": (lambda c: c.post_form(file="/etc/passwd"), "holds text"),
    "no file field": (lambda c: c.post_form(image="x"), "no field 'file'"),
    "a broken form": (lambda c: c.request("/predict", b"x", "multipart/form-data"), "form"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_body_that_is_no_request_is_refused_and_the_server_keeps_serving(
    client, test_images, case
):
    send, words = BAD_BODIES[case]
    status, answer = send(client)
    assert status == 400 and words in answer["detail"]
    assert upload(client, png_bytes(test_images[0]))[0] == 200


def test_the_page_health_and_info(client, tiny_checkpoint):
    status, page = client.request("/")
    assert status == 200 and 'id="top-class"' in page and "http" not in page.split("<script>")[1]
    assert client.request("/health") == (200, "ok")
    model = client.request("/info")[1]["model"]
    assert model["checkpoint"] == str(tiny_checkpoint) and model["network"] == "VGGStyleCNN"
    assert model["tta"] == "flip" and model["parameters"] > 0 and model["device"] == "cpu"
    assert model["val_acc"] is None and model["test_acc"] is None  # a bare checkpoint


def test_info_gives_the_accuracy_of_the_run_that_tested_the_checkpoint(tiny_checkpoint, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    best = run / "checkpoints" / "best-epoch03-val_acc0.9.ckpt"
    shutil.copy(tiny_checkpoint, best)
    shutil.copy(tiny_checkpoint, run / "checkpoints" / "last.ckpt")
    summary = {"best_checkpoint": "checkpoints/" + best.name, "best_val_acc": 0.9, "test_acc": 0.8}
    (run / "test_metrics.json").write_text(json.dumps(summary))
    served = serve.build_server(serve.parse_arguments([str(run)])).model_metadata
    assert served["checkpoint"] == str(best)
    assert (served["val_acc"], served["test_acc"]) == (0.9, 0.8)
    last = serve.build_server(serve.parse_arguments([str(run / "checkpoints" / "last.ckpt")]))
    assert last.model_metadata["test_acc"] is None  # not the checkpoint that was tested


def test_without_a_model_the_shipped_one_is_served_with_its_cards_accuracy():
    served = serve.build_server(serve.parse_arguments([])).model_metadata
    assert served["checkpoint"] == "shipped: speedrun.pt" and served["network"] == "CompactCNN"
    assert 0.9 < served["test_acc"] < served["val_acc"] < 1  # 93.43% and 94.21% on the card


@pytest.mark.parametrize(
    "argv, words",
    [
        (["{not_a_checkpoint}"], "could not be read as a PyTorch checkpoint"),
        (["{tmp}/missing.ckpt"], "No checkpoint file at"),
        (["{tmp}"], "has no checkpoints/best-*.ckpt"),
        (["--max-batch-size", "0"], "max_batch_size must be greater than 0"),
        (["--workers", "0"], "workers_per_device must be >= 1"),
        (["--device", "tpu"], "Unknown device 'tpu'"),
    ],
)
def test_a_model_or_option_that_cannot_serve_stops_before_listening(
    tiny_checkpoint, tmp_path, capsys, monkeypatch, argv, words
):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"not a checkpoint")
    argv = [a.format(not_a_checkpoint=bad, tmp=tmp_path) for a in argv]
    if argv[0].startswith("-"):
        argv.insert(0, str(tiny_checkpoint))
    monkeypatch.setattr(serve.ls.LitServer, "run", lambda *a, **k: pytest.fail("it listened"))
    status, _, err = run_command(lambda: serve.main(argv), capsys)
    assert status == 2 and words in err and "Traceback" not in err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(
    base: str, process: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, log and log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    pytest.fail("serve did not become healthy in 120 s")


@pytest.fixture(scope="module")
def served_command(tmp_path_factory):
    """The real command without a model (the shipped one), batching off, on a free port of
    127.0.0.1; its base URL. (With a checkpoint: the in-process server above.)"""
    port = free_port()
    command = [sys.executable, "-m", "fmnist_lightning.serve"]
    command += ["--port", str(port), "--max-batch-size", "1"]
    log = tmp_path_factory.mktemp("serve") / "output.txt"  # a file: a full pipe would block it
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, log)
        yield base
    finally:
        process.terminate()  # as Ctrl+C: LitServe stops its worker processes
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]


@pytest.mark.slow
def test_the_command_answers_a_real_client_over_http(served_command, test_images):
    from fmnist_lightning import load_classifier

    client = Client(served_command)
    status, answers = client.post_json({"images": [test_images[0].tolist()]})
    expected = load_classifier().predict(test_images[:1]).probabilities[0]
    assert status == 200 and answers[0]["class"] == CLASS_NAMES[int(expected.argmax())]
    got = np.array(list(answers[0]["probabilities"].values()))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)
    status, refused = client.post_json({"images": ["shirt.png"]})
    assert status == 400 and "not base64" in refused["detail"]
    assert client.post_json({"images": [GRID]})[0] == 200


def browser():
    """Headless Chromium through Debian's chromedriver (Selenium Manager cannot download)."""
    driver_path, chromium = shutil.which("chromedriver"), shutil.which("chromium")
    if not driver_path or not chromium:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--window-size=900,700"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


@pytest.mark.slow
def test_the_page_in_a_real_browser_shows_the_apis_top_class(served_command, photos, tmp_path):
    """A real test image where the data is (CI), else a synthetic one as a light JPEG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upload, label = photos[1], None
    if real := os.environ.get("FMNIST_DATA_DIR"):
        test_set = FashionMNIST(real, train=False)
        upload, label = tmp_path / "test-image-0.png", CLASS_NAMES[int(test_set.targets[0])]
        Image.fromarray(test_set.data[0].numpy()).save(upload)
    status, answer = Client(served_command).post_form(file=upload.read_bytes())
    assert status == 200 and label in (None, answer["class"])  # the shipped model knows it
    driver = browser()
    try:
        driver.get(served_command + "/")
        driver.find_element(By.ID, "file").send_keys(str(upload))
        shown = WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.ID, "top-class").text or d.find_element(By.ID, "error").text
        )
        assert shown == answer["class"]
    finally:
        driver.quit()
