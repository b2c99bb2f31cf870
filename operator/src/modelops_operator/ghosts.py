"""Objects the operator's watches still show though the apiserver deleted them.

kopf keeps its indexes while the operator pauses (another replica leads, or `kopf freeze`), and
when it resumes it lists every kind again and indexes what the listing holds, but never drops
what the listing lacks: a model or child deleted meanwhile would stay in the indexes, and the
operator would resync a model that is gone, or never recreate a Service that is. The same holds
whenever a watch lists again on its own (its resourceVersion expired while it reconnected). So
when the resync finds the operator leading again after a pause, and at the end of every resync
round, it lists every watched kind once itself: what the indexes showed before that listing and
the listing lacks is a ghost, and the readers (WatchedModels, WatchedChildren) skip it; the
models whose children turned out ghosts are reconciled at once. A uid is never reused, so a
ghost stays one; an object made again under the same name has a new uid and is seen as it is."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from modelops_operator.kube import Kube

# An object the watches show: (namespace, uid).
Shown = tuple[str, str]


@dataclass(frozen=True)
class Watch:
    """A watched kind and the selectors its watch carries."""

    api_version: str
    kind: str
    label_selector: str = ""
    field_selector: str = ""


class Ghosts:
    """The uids of objects the watches show and the apiserver does not have."""

    def __init__(self) -> None:
        self._uids: frozenset[str] = frozenset()

    def __contains__(self, uid: object) -> bool:
        return uid in self._uids

    def __bool__(self) -> bool:
        return bool(self._uids)

    def __len__(self) -> int:
        return len(self._uids)

    def find(
        self, kube: Kube, watches: Sequence[Watch], shown: Iterable[Shown], *, clusterwide: bool
    ) -> frozenset[str]:
        """Replace the ghosts with the objects among `shown` (what the indexes held before this
        call) that a listing of `watches` lacks: cluster-wide, or in each namespace of `shown`.
        Returns the uids that were no ghosts before; blocking (a request per watch, and
        namespace)."""
        shown = set(shown)
        namespaces = [""] if clusterwide else sorted({namespace for namespace, _ in shown})
        listed: set[str] = set()
        for watch in watches:
            for namespace in namespaces:
                items = kube.list(
                    watch.api_version,
                    watch.kind,
                    namespace,
                    watch.label_selector,
                    field_selector=watch.field_selector,
                )
                listed.update(item["metadata"]["uid"] for item in items)
        found = frozenset(uid for _, uid in shown) - listed
        new, self._uids = found - self._uids, found
        return new
