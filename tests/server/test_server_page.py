"""The model's page at `/` and the card it is built from, driven in a real headless Chromium
against a real server process: the form predicts, a CSV file gives a table and a download, and a
bad value shows the server's own message next to its field."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Artifact, Process, Server  # type: ignore[import-not-found]
from modelops_envtest.browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

PAGE_FILES = ("/", "/page.js", "/page.css")
BROWSER_WAIT_SECONDS = 30


def test_the_card_holds_what_the_trainer_recorded(iris_server: Server) -> None:
    card = iris_server.client.get("/card").json()
    metadata = iris_server.artifact.metadata
    assert card["name"] == metadata["name"]
    assert card["version"] == metadata["version"]
    assert card["sha256"] == metadata["sha256"]
    assert card["metrics"] == metadata["metrics"]
    assert card["trainedAt"] == metadata["createdAt"]
    assert card["importance"] == metadata["importance"]
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert card["runtime"]["name"] == "compiled"
    assert card["runtime"]["libraries"] == metadata["libraryVersions"]
    assert card["features"][0] == {
        "name": "sepal length (cm)",
        "type": "numeric",
        "min": 4.3,
        "max": 7.9,
    }


def test_a_card_of_a_model_not_loaded_says_why(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(Artifact(tmp_path, {}))
    answer = server.client.get("/card")
    assert answer.status_code == 503
    assert "metadata.json does not exist" in answer.json()["error"]


@pytest.mark.parametrize("path", PAGE_FILES)
def test_the_page_is_the_servers_own_and_runs_only_its_own_files(
    iris_server: Server, path: str
) -> None:
    answer = iris_server.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    # Works offline: nothing loaded from anywhere else.
    assert not re.search(r"(src|href)=\"?(https?:)?//", answer.text)
    assert "@import" not in answer.text


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def page(
    browser: WebDriver, serve_process: Callable[[Artifact], Process], iris_forest: Artifact
) -> WebDriver:
    browser.get(serve_process(iris_forest).url + "/")
    wait_for(browser, lambda: browser.find_element(By.ID, "content").is_displayed(), "the page")
    return browser


def wait_for(browser: WebDriver, condition: Callable[[], Any], what: str) -> Any:
    return WebDriverWait(browser, BROWSER_WAIT_SECONDS).until(
        lambda _: condition(), message=f"waiting for {what}"
    )


def fill(browser: WebDriver, values: list[str]) -> None:
    for index, value in enumerate(values):
        field = browser.find_element(By.ID, f"feature-{index}")
        field.clear()
        field.send_keys(value)


def test_the_form_predicts_a_class_with_its_probabilities(
    page: WebDriver, iris_forest: Artifact
) -> None:
    assert page.title == f"{iris_forest.name} {iris_forest.version}"
    card = page.find_element(By.ID, "card").text
    assert "RandomForestClassifier" in card and "accuracy" in card
    # Global importance from training, largest first.
    importance = page.find_elements(By.CSS_SELECTOR, "#importance-chart .bar")
    shown = [bar.text.split("\n")[0] for bar in importance]
    assert shown == list(iris_forest.metadata["importance"]["features"])
    assert "held-out rows, tree-shap" in page.find_element(By.ID, "importance-about").text
    fill(page, ["5.1", "3.5", "1.4", "0.2"])
    page.find_element(By.ID, "predict").click()
    answer = wait_for(page, lambda: page.find_element(By.ID, "answer").text, "an answer")
    assert answer == "setosa"
    bars = page.find_elements(By.CSS_SELECTOR, "#chart .bar")
    assert [bar.text.split("\n")[0] for bar in bars] == ["setosa", "versicolor", "virginica"]
    assert "setosa" in page.find_element(By.CSS_SELECTOR, "#chart .bar.top").text
    assert '"instances":[[5.1,3.5,1.4,0.2]]' in page.find_element(By.ID, "curl").text


def test_the_form_explains_the_class_with_each_features_contribution(
    page: WebDriver, iris_server: Server
) -> None:
    row = [5.1, 3.5, 1.4, 0.2]
    fill(page, [str(value) for value in row])
    page.find_element(By.ID, "predict").click()

    bars = wait_for(
        page, lambda: page.find_elements(By.CSS_SELECTOR, "#why-chart .contribution"), "the bars"
    )
    explained = iris_server.client.post("/explain", json={"instances": [row]}).json()
    setosa = explained["outputs"].index("setosa")
    contributions = {
        name: explained["contributions"][0][index][setosa]
        for index, name in enumerate(explained["features"])
    }
    # Largest first, each feature once, with its value and its side.
    shown = [bar.text.split("\n") for bar in bars]
    assert [name for name, _ in shown] == sorted(
        contributions, key=lambda name: -abs(contributions[name])
    )
    for (name, value), bar in zip(shown, bars, strict=True):
        # The page shows three decimals.
        assert float(value) == pytest.approx(contributions[name], abs=1e-3)
        side = bar.find_element(By.CLASS_NAME, "fill").get_attribute("class")
        assert side == ("fill for" if contributions[name] > 0 else "fill against")
    # The largest fills half the track: one side of the base value's line.
    track, largest = (bars[0].find_element(By.CLASS_NAME, name) for name in ("track", "fill"))
    assert largest.size["width"] == pytest.approx(track.size["width"] / 2, abs=2)
    base = page.find_element(By.ID, "why-base").text
    assert "Contributions to the probability of setosa" in base


def test_a_model_without_an_explainer_predicts_and_says_why_it_is_not_explained(
    browser: WebDriver,
    serve_process: Callable[[Artifact], Process],
    trained: Callable[..., Artifact],
) -> None:
    browser.get(serve_process(trained("SVC", probability=False)).url + "/")
    wait_for(browser, lambda: browser.find_element(By.ID, "content").is_displayed(), "the page")
    fill(browser, ["5.1", "3.5", "1.4", "0.2"])
    browser.find_element(By.ID, "predict").click()

    note = wait_for(browser, lambda: browser.find_element(By.ID, "why-note").text, "the note")

    assert note.startswith("No explanation:") and "SVC gives no class probabilities" in note
    assert browser.find_element(By.ID, "answer").text == "setosa"
    assert not browser.find_elements(By.CSS_SELECTOR, "#why-chart .contribution")


HISTORY = {
    "serving": "v000000000002",
    "servingSince": "2026-12-02T10:00:00Z",
    "versions": [
        {
            "version": "v000000000003",
            "origin": "Trained",
            "trainedAt": "2026-12-03T09:00:00Z",
            "score": "accuracy=0.912",
            "metrics": {"accuracy": 0.912},
            "servedSince": None,
        },
        {
            "version": "v000000000002",
            "origin": "Trained",
            "trainedAt": "2026-12-02T09:00:00Z",
            "score": "accuracy=0.947",
            "metrics": {"accuracy": 0.947},
            "servedSince": "2026-12-02T10:00:00Z",
        },
        {
            "version": "v000000000001",
            "origin": "Provided",
            "trainedAt": None,
            "score": None,
            "metrics": {},
            "servedSince": "2026-12-01T10:00:00Z",
        },
    ],
}


def test_the_page_lists_the_versions_the_operator_keeps_and_which_serves_since_when(
    browser: WebDriver,
    serve_process: Callable[..., Process],
    iris_forest: Artifact,
    tmp_path: Path,
) -> None:
    """From the file the operator mounts (here written by hand), read at each request: the
    server never asks the apiserver."""
    history = tmp_path / "history.json"
    history.write_text(json.dumps(HISTORY))
    url = serve_process(iris_forest, MODELOPS_HISTORY_FILE=str(history)).url

    with urllib.request.urlopen(f"{url}/history") as answer:
        assert json.load(answer) == HISTORY
    browser.get(url + "/")
    rows = wait_for(
        browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#history tbody tr"), "versions"
    )
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [line[0] for line in cells] == ["v000000000003", "v000000000002", "v000000000001"]
    assert [line[2:4] for line in cells] == [
        ["Trained", "accuracy=0.912"],
        ["Trained", "accuracy=0.947"],
        ["Provided", ""],
    ]
    assert cells[0][4] == "" and cells[1][4].startswith("since ")
    assert cells[2][4].startswith("served from ")
    assert rows[1].get_attribute("class") == "serving"

    # A new entry reaches the page at its next load, the server unchanged.
    newer = HISTORY | {"serving": "v000000000003", "servingSince": None}
    history.write_text(json.dumps(newer))
    browser.get(url + "/")
    wait_for(
        browser,
        lambda: "rolling out" in browser.find_element(By.ID, "history").text,
        "the newest version rolling out",
    )


def test_a_server_the_operator_did_not_start_has_no_versions_section(page: WebDriver) -> None:
    assert not page.find_element(By.ID, "history-section").is_displayed()
    with urllib.request.urlopen(page.current_url + "card"):
        pass
    try:
        urllib.request.urlopen(page.current_url + "history")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        assert "keeps no history" in json.load(error)["error"]
    else:
        raise AssertionError("GET /history answered without a history")


def test_a_bad_value_shows_the_servers_message_next_to_its_field(page: WebDriver) -> None:
    fill(page, ["5.1", "3.5", "1.4", "wide"])
    page.find_element(By.ID, "predict").click()
    field = page.find_element(By.CSS_SELECTOR, '.field[data-feature="petal width (cm)"]')
    message = wait_for(page, lambda: field.find_element(By.CLASS_NAME, "error").text, "an error")
    assert message == "row 0, feature 'petal width (cm)': 'wide' is not a number"
    assert "invalid" in field.get_attribute("class")
    assert not page.find_element(By.ID, "result").is_displayed()


def test_a_csv_file_gives_a_table_and_a_download(page: WebDriver, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    # Columns in another order than the model's: the header names them.
    csv.write_text(
        "petal width (cm),petal length (cm),sepal width (cm),sepal length (cm)\n"
        "0.2,1.4,3.5,5.1\n"
        "2.3,5.9,3.0,6.8\n"
    )
    page.find_element(By.ID, "csv").send_keys(str(csv))
    table = page.find_element(By.ID, "table")
    rows = wait_for(page, lambda: table.find_elements(By.CSS_SELECTOR, "tbody tr"), "the table")
    predictions = [row.find_elements(By.TAG_NAME, "td")[4].text for row in rows]
    assert predictions == ["setosa", "virginica"]
    header = [cell.text for cell in table.find_elements(By.TAG_NAME, "th")]
    assert header[:5] == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
        "prediction",
    ]
    assert page.find_element(By.ID, "download").get_attribute("href").startswith("blob:")


def test_the_download_keeps_formulas_as_text_and_numbers_as_numbers(page: WebDriver) -> None:
    cells = {
        '=HYPERLINK("http://x")': '"\'=HYPERLINK(""http://x"")"',
        "+1+1": "'+1+1",
        "-2+3": "'-2+3",
        "@SUM(A1)": "'@SUM(A1)",
        "\t=1": "'\t=1",
        "-1.5": "-1.5",
        "+2": "+2",
        "setosa": "setosa",
    }
    text = page.execute_script("return csvText([arguments[0]]);", list(cells))
    assert text == ",".join(cells.values()) + "\n"


def test_a_csv_file_the_server_refuses_shows_why(page: WebDriver, tmp_path: Path) -> None:
    csv = tmp_path / "short.csv"
    csv.write_text("5.1,3.5,1.4\n")
    page.find_element(By.ID, "csv").send_keys(str(csv))
    error = page.find_element(By.ID, "batch-error")
    message = wait_for(page, lambda: error.text, "the error")
    assert message.startswith("instance 0 has 3 values; the model takes 4 features")
