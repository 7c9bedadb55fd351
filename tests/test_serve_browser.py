"""The web page at `/` in a real browser: Debian's chromium driven by Selenium draws digits on the canvas and
types sentences, and the answers the page shows must be right; the console must stay free of errors (a CSP
violation is one). A screenshot is kept in the test's tmp folder, and in $KERASDL_SCREENSHOT_DIR when set (how
docs/images/serve_page.png is made)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from kerasdl.serve.app import ServerConfig

pytest_plugins = ["serve_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = "serve_page.png"
ANSWER_TIMEOUT_S = 20
CANVAS_CENTER = 140  # the drawing canvas is 280 x 280 CSS pixels


def ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 24) -> list[tuple[float, float]]:
    return [(cx + rx * math.sin(2 * math.pi * k / points), cy - ry * math.cos(2 * math.pi * k / points))
            for k in range(points + 1)]


# Each digit as strokes of (x, y) canvas points, drawn as a person would with a mouse.
DIGITS = {
    "1": [[(150, 40), (140, 140), (135, 240)]],
    "0": [ellipse(140, 140, 60, 95)],
    "4": [[(160, 40), (70, 170), (220, 170)], [(170, 100), (170, 250)]],
    "7": [[(70, 50), (210, 50), (170, 120), (125, 240)]],
}
SENTENCES = {
    "positive": "a gorgeous , witty and deeply moving film , one of the best of the year",
    "negative": "a dull , tedious and painfully boring mess , the worst film of the year",
}


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """Headless chromium with its console log kept; nothing is downloaded (the driver's path is given)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: run .ci/system-packages (Debian's chromium and "
                    "chromium-driver), then rerun this test")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1050,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()


@pytest.fixture
def page(driver, live_server):
    """The page freshly loaded from the live server, its model list filled."""
    driver.get(live_server.url + "/")
    WebDriverWait(driver, ANSWER_TIMEOUT_S).until(
        lambda d: d.find_element(By.ID, "model").is_enabled() or d.find_element(By.ID, "error").is_displayed())
    assert not driver.find_element(By.ID, "error").is_displayed(), \
        f"the page could not list the models: {driver.find_element(By.ID, 'error').text}"
    return driver


def pick(driver, name: str) -> str:
    """Choose the latest version of model `name` in the picker; returns the option's text."""
    picker = Select(driver.find_element(By.ID, "model"))
    options = [option for option in picker.options if option.get_attribute("value").startswith(f"{name}/")]
    assert options, f"{name} is not in the model picker: {[option.text for option in picker.options]}"
    picker.select_by_value(options[0].get_attribute("value"))
    return options[0].text


def draw(driver, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw strokes on #canvas with the mouse: press at each stroke's first point, move through the rest."""
    canvas = driver.find_element(By.ID, "canvas")
    actions = ActionChains(driver, duration=5)
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        actions.move_to_element_with_offset(canvas, x - CANVAS_CENTER, y - CANVAS_CENTER).click_and_hold()
        for x, y in rest:
            actions.move_to_element_with_offset(canvas, x - CANVAS_CENTER, y - CANVAS_CENTER)
        actions.release()
    actions.perform()


def answer(driver) -> tuple[str, str]:
    """The label and score shown once the page has the model's answer; an error shown instead fails."""
    shown = WebDriverWait(driver, ANSWER_TIMEOUT_S).until(
        lambda d: d.find_element(By.ID, "label").text or d.find_element(By.ID, "error").is_displayed())
    error = driver.find_element(By.ID, "error")
    assert shown and not error.is_displayed(), f"the page showed an error instead of an answer: {error.text}"
    return driver.find_element(By.ID, "label").text, driver.find_element(By.ID, "score").text


def console_errors(driver) -> list[str]:
    """The browser console's errors since the last call (CSP violations, script errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_screenshot(driver, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(folder / SCREENSHOT)), f"chromium could not save a screenshot in {folder}"


def test_drawn_digits_are_read_as_drawn(page, tmp_path):
    """Each digit drawn on the canvas is sent (MNIST-preprocessed) and shown as its label, with a score and
    a bar chart of every class; the last one is kept as the screenshot."""
    option = pick(page, "mlp-mnist")
    assert "classification" in option, f"the picker should show the model's task: {option!r}"
    for digit, strokes in DIGITS.items():
        page.find_element(By.ID, "clear").click()
        draw(page, strokes)
        page.find_element(By.ID, "predict").click()
        label, score = answer(page)
        assert label == digit, f"drew a {digit}, the page says {label} ({score})"
        assert score.endswith("%") and 0 < float(score[:-1]) <= 100, f"the score shown is not a percentage: {score!r}"
        assert page.find_element(By.ID, "chart").is_displayed(), "the bar chart of class scores is not shown"
    save_screenshot(page, tmp_path)
    if os.environ.get("KERASDL_SCREENSHOT_DIR"):
        save_screenshot(page, Path(os.environ["KERASDL_SCREENSHOT_DIR"]))
    errors = console_errors(page)
    assert errors == [], f"the browser console reported errors: {errors}"


def test_sentences_are_classified_by_sentiment(page):
    """A clearly positive and a clearly negative sentence typed in the text box get their sentiment."""
    pick(page, "text-cnn-sst2")
    text = page.find_element(By.ID, "text")
    assert text.is_displayed() and not page.find_element(By.ID, "canvas").is_displayed(), \
        "a text model should show the text box, not the drawing canvas"
    for sentiment, sentence in SENTENCES.items():
        text.clear()
        text.send_keys(sentence)
        page.find_element(By.ID, "submit-text").click()
        label, score = answer(page)
        assert label == sentiment, f"{sentence!r} was labelled {label} ({score}), not {sentiment}"
    errors = console_errors(page)
    assert errors == [], f"the browser console reported errors: {errors}"


def test_errors_are_shown_in_the_error_box(page, tmp_path):
    """Predicting on an empty canvas, and the API refusing an upload that is not an image, each show a message
    in the error box; the only console entry is the refused request itself."""
    pick(page, "mlp-mnist")
    page.find_element(By.ID, "clear").click()
    page.find_element(By.ID, "predict").click()
    error = page.find_element(By.ID, "error")
    assert error.is_displayed() and "draw a digit" in error.text, f"empty canvas: error box shows {error.text!r}"

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    page.find_element(By.ID, "image").send_keys(str(not_an_image))
    page.find_element(By.ID, "submit-image").click()
    WebDriverWait(page, ANSWER_TIMEOUT_S).until(lambda d: "not an image" in d.find_element(By.ID, "error").text)
    unexpected = [message for message in console_errors(page) if "status of 400" not in message]
    assert unexpected == [], f"the browser console reported errors besides the refused upload: {unexpected}"


def test_api_key_field_unlocks_a_server_that_needs_one(driver, repository):
    """Against a server with an API key, the page shows the refusal and a key field; the key typed there is
    sent with every request, so the models list and a prediction then work."""
    from serve_fixtures import start_server  # imported here: pytest_plugins imports the module first

    server = start_server(repository, ServerConfig(api_key="page-test-key"))
    try:
        driver.get(server.url + "/")
        WebDriverWait(driver, ANSWER_TIMEOUT_S).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        refusal = driver.find_element(By.ID, "error").text
        assert "API key" in refusal, f"the error box should say an API key is needed: {refusal!r}"
        key = driver.find_element(By.ID, "api-key")
        assert key.is_displayed(), "no API key field shown after the server asked for a key"
        key.send_keys("page-test-key", Keys.TAB)
        WebDriverWait(driver, ANSWER_TIMEOUT_S).until(lambda d: d.find_element(By.ID, "model").is_enabled())
        pick(driver, "text-cnn-sst2")
        driver.find_element(By.ID, "text").send_keys(SENTENCES["positive"])
        driver.find_element(By.ID, "submit-text").click()
        label, score = answer(driver)
        assert label == "positive", f"with the key, the positive sentence was labelled {label} ({score})"
    finally:
        server.close()
    unexpected = [message for message in console_errors(driver) if "status of 401" not in message]
    assert unexpected == [], f"the browser console reported errors besides the refused listing: {unexpected}"
