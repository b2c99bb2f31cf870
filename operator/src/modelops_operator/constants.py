"""Names shared by the CRD, the builders and the handlers."""

GROUP = "modelops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["mdep"]
CRD_NAME = f"{PLURAL}.{GROUP}"

# Who wrote: the field manager of every apply, and the component of every Event
# ("From" in `kubectl describe`).
COMPONENT = "modelops-operator"

# Labels on every child; LABEL_MODEL finds a child's ModelDeployment.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelops"
LABEL_MODEL = f"{GROUP}/model"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_VERSION = f"{GROUP}/version"
LABEL_TRAINING_HASH = f"{GROUP}/training-hash"

# Annotations on children.
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
ANNOTATION_MODEL_SHA256 = f"{GROUP}/model-sha256"

# On the ModelDeployment: a new value trains again with the same spec (new data at the same
# URL, a retry after a failure), as `kubectl rollout restart` restarts a Deployment.
ANNOTATION_RETRAIN = f"{GROUP}/retrain"

# Child name patterns (the ModelDeployment's name is at most 40 characters, so all fit in 63).
TRAINING_JOB_NAME = "{name}-train-{training_hash}"
SERVER_NAME = "{name}-server"
SERVICE_NAME = "{name}"
CLAIM_NAME = "{name}-models"
DASHBOARD_NAME = "{name}-dashboard"
# The model's versions as its page lists them, mounted into the serving pods.
HISTORY_NAME = "{name}-history"
NETWORK_POLICY_NAME = "{name}-network"
# The Job that points the registry's alias at the serving version (a number: at most 11 digits
# fit).
CHAMPION_JOB_NAME = "{name}-champion-{registered_version}"

# Paths and ports of the artifact contract (docs/artifact-contract.md).
ARTIFACT_MOUNT_PATH = "/models"
# Where a serving pod reads the history ConfigMap: a volume, so a new entry changes the file
# (within the kubelet's sync period) and never the pod template.
HISTORY_MOUNT_PATH = "/etc/modelops/history"
HISTORY_FILE = "history.json"
# What a spec.model's file is fetched as, in its version's directory (it has no metadata.json).
PROVIDED_MODEL_FILE = "model"
SERVER_PORT = 8080
# The Open Inference Protocol over gRPC, on KServe's and MLServer's port.
SERVER_GRPC_PORT = 8081
TERMINATION_LOG = "/dev/termination-log"

CONDITION_TRAINED = "Trained"
CONDITION_DEPLOYED = "Deployed"
CONDITION_READY = "Ready"
# Whether the model's scrape job and dashboard are in place: reported, never a reason to stop
# serving (the shared configuration is the platform's).
CONDITION_MONITORED = "Monitored"
