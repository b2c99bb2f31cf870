"""Where a model's scrape job goes, against a tenant that aims at another's file: the file is
chosen by a keyed hash no tenant can compute, one namespace takes at most its share of any file,
a model that finds no room is told so in its Monitored condition, and a job that an older
operator placed is moved, never copied."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import (  # type: ignore[import-not-found]
    MONITORING_NS,
    Models,
    configmap_data,
    placed,
    sample,
    scrape_jobs,
    taken_over,
)
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.operator import OperatorProcess
from modelops_envtest.waiting import wait_until
from modelops_operator import registration
from modelops_operator.monitoring import prometheus

pytestmark = pytest.mark.controlplane

ATTACKERS = 120
# One namespace may have two jobs in a file, and a file six: the attacker's share and room for
# everyone else's.
JOB_BYTES = len(json.dumps(prometheus.build_scrape_job(f"t-{'0' * 10}", "a0000", "15s")))
NAMESPACE_BYTES = int(2.5 * JOB_BYTES)
FILE_BYTES = 6 * JOB_BYTES + 200


@pytest.fixture
def attacker(control_plane: ControlPlane) -> Iterator[Models]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield Models(control_plane, name)
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def copies(models: Models, names: list[str]) -> None:
    items = [sample("iris") | {"metadata": {"name": name}} for name in names]
    models.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


def jobs_of(control_plane: ControlPlane, namespace: str) -> list[tuple[str, str]]:
    """(ConfigMap, model) of every job of the namespace's models."""
    return [
        (configmap, model[1])
        for configmap, job in scrape_jobs(control_plane)
        if (model := prometheus.model_of_job(job)) and model[0] == namespace
    ]


def test_many_models_of_one_namespace_cannot_crowd_another_namespaces_model_out_of_its_file(
    control_plane: ControlPlane,
    operator: OperatorProcess,
    models: Models,
    attacker: Models,
    monitoring_namespace: str,
) -> None:
    with taken_over(
        control_plane,
        operator,
        MODELOPS_SCRAPE_NAMESPACE_BYTES=str(NAMESPACE_BYTES),
        MODELOPS_SCRAPE_FILE_BYTES=str(FILE_BYTES),
    ):
        models.apply(sample("iris"))
        [(victims_file, _)] = wait_until(
            lambda: jobs_of(control_plane, models.namespace), what="the victim's scrape job"
        )
        # The names that a hash anyone can compute would put beside the victim's next model.
        aimed = prometheus.unkeyed_scrape_file_index(models.namespace, "wine")
        names = [
            name
            for name in (f"a{index:04d}" for index in range(10 * 32 * ATTACKERS))
            if prometheus.unkeyed_scrape_file_index(attacker.namespace, name) == aimed
        ][:ATTACKERS]
        copies(attacker, names)

        def told() -> dict[str, dict[str, str]]:
            conditions = {name: attacker.condition(name, "Monitored") for name in names}
            return conditions if all(conditions.values()) else {}

        monitored = wait_until(told, timeout=300, what="every attacker model's Monitored")
        copies(models, ["wine"])
        wait_until(
            lambda: len(jobs_of(control_plane, models.namespace)) == 2,
            what="the victim's second job",
        )

        victims = jobs_of(control_plane, models.namespace)
        attackers = jobs_of(control_plane, attacker.namespace)
        assert (victims_file, "iris") in victims, "the victim's job stays where it was"
        assert models.condition("wine", "Monitored")["status"] == "True"
        per_file = Counter(configmap for configmap, _ in attackers)
        assert max(per_file.values()) <= 2, f"one namespace takes its share only: {per_file}"
        assert len(per_file) > 16, "the attacker's jobs are spread, not aimed"
        refused = {name for name, condition in monitored.items() if condition["status"] == "False"}
        assert refused, "some of the attacker's models found no room"
        assert refused == set(names) - {name for _, name in attackers}
        for name in refused:
            message = monitored[name]["message"]
            assert f"namespace {attacker.namespace}'s jobs would take" in message, message
            assert "one namespace may (MODELOPS_SCRAPE_NAMESPACE_BYTES)" in message, message
        assert attacker.status(next(iter(refused))).get("phase") != "Failed", "it keeps going"
        attacker.kubectl("delete", "mdep", "--all", "--timeout=180s")
        models.kubectl("delete", "mdep", "--all", "--timeout=180s")


def test_a_job_an_older_operator_placed_is_moved_to_its_keyed_file_and_never_copied(
    control_plane: ControlPlane,
    operator: OperatorProcess,
    models: Models,
    monitoring_namespace: str,
) -> None:
    settings = placed(control_plane)
    name = next(
        name
        for name in (f"m{index}" for index in range(1000))
        if registration.scrape_config_map(settings, models.namespace, name)[1]
        != registration.scrape_config_maps(settings)[
            prometheus.unkeyed_scrape_file_index(models.namespace, name)
        ][1]
    )
    old_file = registration.scrape_config_maps(settings)[
        prometheus.unkeyed_scrape_file_index(models.namespace, name)
    ][1]
    new_file = registration.scrape_config_map(settings, models.namespace, name)[1]
    job = prometheus.build_scrape_job(models.namespace, name, "15s")
    key = registration.scrape_file_key(old_file)
    seen: list[list[tuple[str, str]]] = []
    # Paused, the operator can neither sweep the planted job as an orphan before its model
    # exists nor move it before the test has seen it where the older operator put it.
    with operator.paused():
        planted = prometheus.with_scrape_job(
            configmap_data(control_plane, MONITORING_NS, old_file).get(key), job
        )
        control_plane.kubectl(
            "-n", MONITORING_NS, "create", "configmap", old_file, f"--from-literal={key}={planted}",
            check=False,
        )  # fmt: skip
        control_plane.kubectl(
            "-n", MONITORING_NS, "patch", "configmap", old_file, "--type=merge",
            "-p", json.dumps({"data": {key: planted}}),
        )  # fmt: skip
        copies(models, [name])
        seen.append(jobs_of(control_plane, models.namespace))
        assert seen == [[(old_file, name)]]

    def moved() -> bool:
        seen.append(jobs_of(control_plane, models.namespace))
        return seen[-1] == [(new_file, name)]

    wait_until(moved, timeout=60, what="the job to move to its keyed file")
    assert all(len(jobs) <= 1 for jobs in seen), f"never in two files: {seen}"
    models.kubectl("delete", "mdep", "--all", "--timeout=60s")
