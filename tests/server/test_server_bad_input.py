"""Every kind of bad request gets a 4xx with a JSON error saying what was wrong; never a 500,
and the server keeps serving. Hypothesis throws arbitrary JSON and near-valid tensors at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from conftest import Artifact, Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelops_server import v2

SETOSA = [5.1, 3.5, 1.4, 0.2]
NAME = "iris-randomforestclassifier"
INFER = f"/v2/models/{NAME}/infer"


def tensor(data: Any, shape: Any = (1, 4), datatype: str = "FP64") -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": list(shape), "datatype": datatype, "data": data}]
    }


BAD_PREDICT_BODIES: list[tuple[str, Any, int, str]] = [
    ("too few features", {"instances": [[1.0, 2.0, 3.0]]}, 400, "has 3 values; the model takes 4"),
    ("too many features", {"instances": [[1.0] * 5]}, 400, "has 5 values"),
    (
        "a string value",
        {"instances": [[1.0, "a", 3.0, 4.0]]},
        400,
        "'sepal width (cm)': 'a' is not a number",
    ),
    ("a boolean value", {"instances": [[1.0, True, 3.0, 4.0]]}, 400, "True is not a number"),
    ("a null value", {"instances": [[1.0, None, 3.0, 4.0]]}, 400, "None is not a number"),
    ("a nested value", {"instances": [[1.0, [2.0], 3.0, 4.0]]}, 400, "is not a number"),
    ("an empty batch", {"instances": []}, 400, "the batch is empty"),
    ("no instances", {"rows": [SETOSA]}, 400, "'instances' list"),
    ("instances not a list", {"instances": {"a": 1}}, 400, "instances must be a list"),
    ("a row of the wrong kind", {"instances": [SETOSA, 3]}, 400, "instance 1 must be a list"),
    ("a list body", [SETOSA], 400, "'instances' list"),
    ("a value too large for the forest", {"instances": [[1e300, 1.0, 1.0, 1.0]]}, 400, "too large"),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in BAD_PREDICT_BODIES],
    ids=[case[0] for case in BAD_PREDICT_BODIES],
)
def test_bad_predict_bodies(iris_server: Server, body: Any, status: int, message: str) -> None:
    response = iris_server.predict(body)

    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_unknown_and_missing_feature_names_are_named(
    iris_server: Server, iris_forest: Artifact
) -> None:
    row = dict(zip(iris_forest.features, SETOSA, strict=True))
    row.pop("petal width (cm)")
    row["petal colour"] = 1.0

    error = iris_server.predict({"instances": [row]}).json()["error"]

    assert "instance 0" in error
    assert "unknown feature(s) 'petal colour'" in error
    assert "missing feature(s) 'petal width (cm)'" in error


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_refused(iris_server: Server, literal: bytes) -> None:
    body = b'{"instances": [[1.0, ' + literal + b", 3.0, 4.0]]}"

    response = iris_server.client.post("/predict", content=body)

    assert response.status_code == 400
    assert response.json()["error"]


def test_malformed_json(iris_server: Server) -> None:
    response = iris_server.client.post("/predict", content=b'{"instances": [[1, 2')

    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not valid JSON")


def test_a_batch_over_the_limit(serve: Callable[..., Server], iris_forest: Artifact) -> None:
    server = serve(iris_forest, max_batch_rows=3)

    assert server.predict({"instances": [SETOSA] * 3}).status_code == 200
    response = server.predict({"instances": [SETOSA] * 4})
    assert response.status_code == 413
    assert "at most 3" in response.json()["error"]
    too_many = server.infer(tensor(SETOSA * 4, shape=(4, 4)))
    assert too_many.status_code == 413


def test_a_body_over_the_limit(serve: Callable[..., Server], iris_forest: Artifact) -> None:
    server = serve(iris_forest, max_body_bytes=1024)
    body = {"instances": [SETOSA] * 100}

    response = server.predict(body)

    assert response.status_code == 413
    assert "at most 1024" in response.json()["error"]

    def chunks() -> Any:
        # No Content-Length: the limit must hold while reading.
        yield b'{"instances": ['
        for _ in range(100):
            yield b"[5.1, 3.5, 1.4, 0.2],"
        yield b"[5.1, 3.5, 1.4, 0.2]]}"

    assert server.client.post("/predict", content=chunks()).status_code == 413


BAD_TENSORS: list[tuple[str, Any, int, str]] = [
    (
        "shape and data disagree",
        tensor(SETOSA, shape=(2, 4)),
        400,
        "holds 8 values, but its data has 4",
    ),
    ("wrong number of columns", tensor(SETOSA[:3], shape=(1, 3)), 400, "has 3 columns"),
    ("unknown datatype", tensor(SETOSA, datatype="FLOAT"), 400, "datatype 'FLOAT'"),
    ("negative shape", tensor(SETOSA, shape=(-1, 4)), 400, "non-negative integers"),
    ("shape not a list", tensor(SETOSA, shape="1x4"), 400, "'shape' must be a list"),
    ("data not a list", tensor("5.1"), 400, "'data' must be a list"),
    ("a string in numeric data", tensor([5.1, "x", 1.4, 0.2]), 400, "'x' is not a number"),
    ("zero rows", tensor([], shape=(0, 4)), 400, "the batch is empty"),
    ("no inputs", {"inputs": []}, 400, "non-empty list"),
    ("inputs missing", {"id": "x"}, 400, "non-empty list"),
    ("input not an object", {"inputs": [3]}, 400, "input 0 must be an object"),
    ("id not a string", {"id": 3, **tensor(SETOSA)}, 400, "'id' must be a string"),
    (
        "unknown output",
        {**tensor(SETOSA), "outputs": [{"name": "explain"}]},
        400,
        "unknown output(s) 'explain'",
    ),
    ("outputs malformed", {**tensor(SETOSA), "outputs": ["predict"]}, 400, "'outputs' must be"),
    (
        "per-feature tensors with a wrong name",
        {
            "inputs": [
                {"name": f, "shape": [1], "datatype": "FP64", "data": [1.0]}
                for f in ("a", "b", "c", "d")
            ]
        },
        400,
        "unknown feature(s) 'a', 'b', 'c', 'd'",
    ),
    (
        "per-feature tensors of different lengths",
        {
            "inputs": [
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
            ]
        },
        400,
        "all with the same rows",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [case[1:] for case in BAD_TENSORS],
    ids=[case[0] for case in BAD_TENSORS],
)
def test_bad_infer_requests(iris_server: Server, body: Any, status: int, message: str) -> None:
    response = iris_server.infer(body)

    assert response.status_code == status, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/wine/infer",
        f"/v2/models/{NAME}/versions/v000000000000/infer",
        "/v2/models/wine",
        "/v2/models/wine/ready",
        f"/v2/models/{NAME}/versions/v000000000000",
    ],
)
def test_a_model_that_is_not_served_is_404(iris_server: Server, path: str) -> None:
    client = iris_server.client
    response = (
        client.post(path, json=tensor(SETOSA)) if path.endswith("infer") else client.get(path)
    )

    assert response.status_code == 404
    assert (
        "is not served here" in response.json()["error"]
        or "has no version" in response.json()["error"]
    )


def test_unknown_paths_and_methods_answer_json_errors(iris_server: Server) -> None:
    missing = iris_server.client.get("/v1/models")
    wrong_method = iris_server.client.get("/predict")

    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]
    assert wrong_method.headers["allow"] == "POST"
    # The routes FastAPI answers say what they allow too (RFC 9110: a 405 must).
    for path, allowed in (("/card", "GET"), ("/drain", "GET"), ("/v2/health/ready", "GET")):
        answer = iris_server.client.post(path)
        assert answer.status_code == 405 and answer.json()["error"], path
        assert answer.headers["allow"] == allowed, path


# --- fuzzing: whatever arrives, a JSON answer below 500, and the server still serves.

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
_cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)
_rows = st.lists(st.lists(_cells, min_size=0, max_size=6), min_size=0, max_size=4)
_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input-0", "sepal length (cm)", "x"]),
        "shape": st.lists(st.integers(-1, 5), min_size=0, max_size=3),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "STRING"]),
        "data": st.one_of(st.lists(_cells, max_size=12), _rows),
    }
)
_infer_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(_tensors, min_size=0, max_size=5)},
    optional={
        "id": _json_values,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba", "x"])}),
            max_size=3,
        ),
    },
)
_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check_answer(server: Server, response: Any) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert response.status_code == 200 or isinstance(body["error"], str)


@_FUZZ
@given(
    body=_json_values
    | st.fixed_dictionaries({"instances": _json_values})
    | st.fixed_dictionaries({"instances": _rows})
)
def test_fuzzed_predict_bodies(iris_server: Server, body: Any) -> None:
    _check_answer(iris_server, iris_server.predict(body))


@_FUZZ
@given(body=_infer_bodies | _json_values)
def test_fuzzed_infer_bodies(iris_server: Server, body: Any) -> None:
    _check_answer(iris_server, iris_server.infer(body))


@_FUZZ
@given(raw=st.binary(max_size=64))
def test_fuzzed_raw_bytes(iris_server: Server, raw: bytes) -> None:
    _check_answer(iris_server, iris_server.client.post("/predict", content=raw))
    _check_answer(iris_server, iris_server.client.post(INFER, content=raw))


def test_the_server_still_serves_after_the_fuzzing(iris_server: Server) -> None:
    for body in [b"{", b"[]", b'{"instances": [[1e999]]}', b"\xff\xfe"]:
        iris_server.client.post("/predict", content=body)

    assert iris_server.predict({"instances": [SETOSA]}).json()["predictions"] == ["setosa"]


# What the server says of a request's form (v2.py, inputs.py): a request the OpenAPI schema
# allows never gets one of these. What it says of the model's own inputs (how many features,
# which names, a value a feature cannot take, shape against data) the schema cannot know.
FORM_ERRORS = (
    "must be a JSON object",
    "'id' must be a string",
    "'inputs' must be a non-empty list",
    "must be an object with name, shape, datatype and data",
    "needs a string 'name'",
    "'shape' must be a list of non-negative integers",
    "is not one of",
    "'parameters' must be an object",
    "'data' must be a list",
    "'outputs' must be a list of objects",
    "the batch is empty",
    "instances must be a list of rows",
    "must be a list of values in feature order or an object keyed by feature name",
    "'instances' list",
    "send either one tensor of shape",
)


def _request_schema(server: Server, model: str) -> dict[str, Any]:
    schema: dict[str, Any] = server.client.get("/openapi.json").json()
    return {"$ref": f"#/components/schemas/{model}", "components": schema["components"]}


def _allowed_bodies(components: dict[str, Any], model: str) -> st.SearchStrategy[Any]:
    """Bodies within what the schema declares: its enums and bounds, read off it, with values
    of every kind JSON has where it allows any."""
    schemas = components["schemas"]
    value = st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
    if model == "PredictRequest":
        row = st.lists(value, min_size=1, max_size=6) | st.dictionaries(
            st.sampled_from(["sepal length (cm)", "petal width (cm)", "x"]) | st.text(max_size=4),
            value,
            min_size=1,
            max_size=5,
        )
        return st.fixed_dictionaries({"instances": st.lists(row, min_size=1, max_size=4)})
    tensor_schema = schemas["RequestInput"]["properties"]
    shape = tensor_schema["shape"]
    tensor = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["input-0", "sepal length (cm)"]) | st.text(max_size=4),
            "shape": st.lists(
                st.integers(shape["items"]["minimum"], 6),
                min_size=shape["minItems"],
                max_size=shape["maxItems"],
            ),
            "datatype": st.sampled_from(tensor_schema["datatype"]["enum"]),
            "data": st.lists(value | st.lists(value, max_size=4), max_size=12),
        }
    )
    outputs = schemas["RequestOutput"]["properties"]["name"]["enum"]
    return st.fixed_dictionaries(
        {"inputs": st.lists(tensor, min_size=1, max_size=4)},
        optional={
            "id": st.text(max_size=6),
            "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(outputs)})),
        },
    )


@pytest.mark.parametrize(
    ("model", "send"), [("PredictRequest", "predict"), ("InferenceRequest", "infer")]
)
def test_a_request_the_openapi_schema_allows_is_never_refused_for_its_form(
    iris_server: Server, model: str, send: str
) -> None:
    """Each is answered, or refused only for what the schema cannot know of the model."""
    schema = _request_schema(iris_server, model)
    validator = jsonschema.Draft202012Validator(schema)

    @_FUZZ
    @given(body=_allowed_bodies(schema["components"], model))
    def sent(body: Any) -> None:
        assert validator.is_valid(body), body
        response = getattr(iris_server, send)(body)
        _check_answer(iris_server, response)
        if response.status_code == 400:
            error = response.json()["error"]
            assert not any(form in error for form in FORM_ERRORS), (body, error)

    sent()


@pytest.mark.parametrize(
    "tensor_change",
    [{"datatype": ""}, {"name": 1}, {"shape": []}, {"shape": [0, 4]}, {"shape": [1, 2, 2]}],
)
def test_what_the_server_refuses_for_its_form_the_schema_refuses(
    iris_server: Server, tensor_change: dict[str, Any]
) -> None:
    body = tensor(SETOSA)
    body["inputs"][0] |= tensor_change
    assert iris_server.infer(body).status_code == 400
    validator = jsonschema.Draft202012Validator(_request_schema(iris_server, "InferenceRequest"))
    assert not validator.is_valid(body)


def test_the_schemas_datatypes_are_the_servers(iris_server: Server) -> None:
    schema = iris_server.client.get("/openapi.json").json()
    datatype = schema["components"]["schemas"]["RequestInput"]["properties"]["datatype"]
    assert set(datatype["enum"]) == v2.DATATYPES
