"""The web page against the real stack that `reelvec up` starts, web front included:
its JSON API over HTTP, then the page itself in Debian's headless Chromium driven by Selenium
(no browser download). Screenshots of a phone-sized and a desktop window go to test-artifacts/."""

import json
import os
import urllib.error
import urllib.request

import grpc
import pytest
from checkout import ROOT

from reelvec.v1 import gateway_pb2

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def corpus_ready(stack, corpus):
    """The sample corpus indexed and a likes model trained (test_pipeline may have done both)."""
    stub = stack.stub()
    try:
        stub.Get(gateway_pb2.GetVideoRequest(id="food_0"), timeout=30)
    except grpc.RpcError:
        stack.cli("index", "--manifest", str(corpus))
    try:
        stub.Predict(gateway_pb2.PredictRequest(id="food_0"), timeout=60)
    except grpc.RpcError:
        stack.cli("train", "regressor")
    return corpus


def get(stack, path: str):
    try:
        with urllib.request.urlopen(stack.web + path, timeout=60) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def compact(n: float) -> str:
    """The page's number format (app.js)."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}".removesuffix(".0") + unit
    return str(round(n))


def test_the_page_and_its_api_are_served_locally(stack, corpus_ready):
    status, kind, body = get(stack, "/")
    assert status == 200 and "text/html" in kind
    assert b"http://" not in body and b"https://" not in body  # no CDN: everything from reelvec itself
    for asset in ("/static/app.js", "/static/app.css"):
        assert get(stack, asset)[0] == 200
    status, _, body = get(stack, "/api/search?text=pasta%20recipe")
    hits = json.loads(body)["hits"]
    assert status == 200 and hits[0]["id"].startswith("food") and hits[0]["likes"] is not None
    status, kind, jpeg = get(stack, hits[0]["thumbnail"])
    assert status == 200 and kind == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    status, kind, data = get(stack, "/api/videos/food_0/file")  # playback: the upload as it came
    assert status == 200 and kind == "video/mp4" and data == (corpus_ready.parent / "food_0.mp4").read_bytes()
    status, _, body = get(stack, "/api/videos/nobody/thumbnail")
    assert status == 404 and "nobody" in json.loads(body)["error"]
    status, _, body = get(stack, "/api/search?text=")
    assert status == 400 and json.loads(body)["error"]


def test_a_thumbnail_is_a_representative_frame_not_the_black_intro(stack, tmp_path):
    from io import BytesIO

    import numpy as np
    from PIL import Image

    from reelvec import samples

    clip = samples.make_video(tmp_path / "intro.mp4", seed=3, seconds=4, black_intro=1.5)
    stack.cli("index", str(clip))
    status, _, jpeg = get(stack, "/api/videos/intro/thumbnail")
    pixels = np.asarray(Image.open(BytesIO(jpeg)))
    assert status == 200 and pixels.shape == (224, 224, 3) and pixels.mean() > 20  # not black


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a browser online
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def test_upload_predict_similar_and_search_in_a_real_browser(stack, corpus_ready, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 240)
    clip = corpus_ready.parent / "travel_1.mp4"
    browser.get(stack.web)
    browser.find_element(By.ID, "video").send_keys(str(clip))
    browser.find_element(By.ID, "caption").send_keys("sunset walk")
    browser.find_element(By.ID, "analyze").click()
    wait.until(seen.visibility_of_element_located((By.ID, "result")))

    expected = stack.stub().Predict(gateway_pb2.PredictRequest(video=clip.read_bytes(), caption="sunset walk", k=12),
                                    timeout=120)
    assert browser.find_element(By.ID, "likes").text == compact(expected.likes)
    assert browser.find_element(By.ID, "likes-range").text == \
        f"likely {compact(expected.likes_low)} – {compact(expected.likes_high)}"
    # the sample corpus carries views: the views model's answer is shown beside likes
    assert browser.find_element(By.ID, "views").text == compact(expected.views.value)
    assert browser.find_element(By.ID, "views-range").text == \
        f"likely {compact(expected.views.low)} – {compact(expected.views.high)}"
    assert browser.find_element(By.ID, "originality").text == f"{round(expected.originality * 100)}%"
    assert browser.find_element(By.ID, "originality-reading").text
    assert not browser.find_element(By.ID, "progress").is_displayed()  # the progress bar is gone
    chips = browser.find_elements(By.CSS_SELECTOR, "#suggestions .chip")
    assert [c.text for c in chips] == [f"#{t}" for t in expected.hashtags]
    # the closest neighbours, travel_1 itself and travel_0 (the same speech), both carry these tags and
    # vote with the top weight; the caption names none of them
    assert {"#travel", "#tokyo", "#tips"} <= {c.text for c in chips}
    chips[0].click()  # a suggestion goes into the caption on a click
    assert chips[0].text in browser.find_element(By.ID, "caption").get_attribute("value")
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .video")
    assert [c.get_attribute("data-id") for c in cards] == [h.id for h in expected.similar]
    assert cards[0] == browser.find_elements(By.CSS_SELECTOR, "#grid .video")[0]
    wait.until(lambda d: d.execute_script("return document.querySelector('#grid img').naturalWidth") > 0)
    browser.save_screenshot(str(ARTIFACTS / "web-desktop-prediction.png"))

    cards[0].find_element(By.CSS_SELECTOR, "button.play").click()  # the thumbnail turns into the video
    video = cards[0].find_element(By.TAG_NAME, "video")
    assert video.get_attribute("src").endswith(f"/api/videos/{expected.similar[0].id}/file")
    wait.until(lambda d: d.execute_script("return arguments[0].readyState", video) >= 1)  # it plays
    first = cards[0].get_attribute("data-id")
    cards[0].find_element(By.CSS_SELECTOR, "button.more").click()
    wait.until(lambda d: "Videos like" in d.find_element(By.ID, "grid-title").text)
    again = [c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .video")]
    assert again and first not in again  # more like it, itself left out

    query = browser.find_element(By.ID, "query")
    query.send_keys("pasta recipe")
    query.submit()
    wait.until(lambda d: "pasta recipe" in d.find_element(By.ID, "grid-title").text)
    found = [c.get_attribute("data-id") for c in browser.find_elements(By.CSS_SELECTOR, "#grid .video")]
    assert found and found[0].startswith("food")

    browser.set_window_size(390, 844)  # a phone
    browser.save_screenshot(str(ARTIFACTS / "web-phone-search.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways on a phone
    browser.set_window_size(1280, 1000)


def test_a_broken_file_gets_a_readable_message_and_an_oversize_one_is_refused_before_upload(stack, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video at all" * 100)
    browser.get(stack.web)
    browser.find_element(By.ID, "video").send_keys(str(broken))
    browser.find_element(By.ID, "analyze").click()
    error = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").text)
    assert "not a media file" in error and "Traceback" not in error

    limit_mb = json.loads(get(stack, "/api/config")[2])["max_video_mb"]
    big = tmp_path / "big.mp4"
    with open(big, "wb") as out:
        out.truncate((limit_mb + 1) * 2**20)
    browser.get(stack.web)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    browser.find_element(By.ID, "video").send_keys(str(big))
    browser.find_element(By.ID, "analyze").click()
    error = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert f"the limit is {limit_mb} MB" in error
    assert not browser.find_element(By.ID, "progress").is_displayed()  # nothing was sent
