"""A real browser for the tests of the model's page: Debian's headless Chromium, driven by
Selenium through Debian's chromedriver (installed with apt-get on first use, like the other
servers the tests run). Selenium Manager stays out of it: it would download a driver."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from modelops_envtest import debian

WINDOW = (1100, 1300)
PAGE_WAIT_SECONDS = 30


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium session, closed on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(debian.command("chromium", package="chromium"))
    for argument in (
        "--headless=new",
        # The tests run as root in a container: Chromium's sandbox needs user namespaces.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    service = Service(str(debian.command("chromedriver", package="chromium-driver")))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(url: str, path: Path) -> None:
    """The model's page at `url` after a prediction with the form as it opens, and its
    explanation: the picture in the README."""
    with chromium() as driver:
        driver.get(url)
        wait = WebDriverWait(driver, PAGE_WAIT_SECONDS)
        wait.until(lambda _: driver.find_element(By.ID, "content").is_displayed())
        driver.find_element(By.ID, "predict").click()
        wait.until(lambda _: driver.find_element(By.ID, "answer").text)
        wait.until(lambda _: driver.find_element(By.ID, "why").is_displayed())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WINDOW[0], height)
        driver.save_screenshot(str(path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=screenshot.__doc__)
    parser.add_argument("url", help="the page, e.g. http://127.0.0.1:8080/")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    arguments = parser.parse_args(argv)
    screenshot(arguments.url, arguments.png)


if __name__ == "__main__":
    main()
