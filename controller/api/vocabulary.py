"""Every name the operator shows to users, in one place so `grep` finds each producer.

Condition types, reasons and Event reasons are CamelCase, as the Kubernetes API
conventions ask; the README lists what each one means.
"""

from __future__ import annotations

GROUP = "video.scene-operator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "video"

PROJECT_KIND, PROJECT_PLURAL, PROJECT_SINGULAR, PROJECT_SHORT = (
    "Project",
    "projects",
    "project",
    "vproj",
)
SCENE_KIND, SCENE_PLURAL, SCENE_SINGULAR, SCENE_SHORT = "Scene", "scenes", "scene", "scn"

# Labels and annotations (the operator writes labels only on Scenes it creates).
LABEL_PROJECT = f"{GROUP}/project"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "scene-operator"
ANNOTATION_REGENERATE = f"{GROUP}/regenerate"
ANNOTATION_RETRY = f"{GROUP}/retry"
# "true" pauses a Project like spec.paused (`kubectl video pause`; as crossplane.io/paused).
ANNOTATION_PAUSED = f"{GROUP}/paused"
PAUSED_MESSAGE = f"paused (spec.paused or annotation {ANNOTATION_PAUSED}): no new jobs"
FINALIZER_CLIPS = f"{GROUP}/delete-clips"
# On the leader-election Leases: which are ours, and the namespaces each shard serves.
LABEL_LEADER_ELECTION = f"{GROUP}/leader-election"
ANNOTATION_NAMESPACES = f"{GROUP}/namespaces"


class Cond:
    """Condition types."""

    READY = "Ready"
    SCENES_PLANNED = "ScenesPlanned"
    VIDEOS_READY = "VideosReady"
    GENERATING = "Generating"
    FAILED = "Failed"
    PAUSED = "Paused"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    # kstatus (abnormal-true, absent when False): see controller/decide/health.py
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    ASSEMBLED = "Assembled"


class Reason:
    """Condition reasons and Event reasons."""

    # planning
    PLANNING = "Planning"
    SCENES_PLANNED = "ScenesPlanned"
    PLANNING_FAILED = "PlanningFailed"
    SCENES_DECLARED = "ScenesDeclared"
    INVALID_SPEC = "InvalidSpec"
    SCENE_NAME_TAKEN = "SceneNameTaken"  # a Scene of the plan's name exists, not this Project's
    # generation
    NOT_REQUESTED = "VideosNotRequested"
    WAITING = "WaitingForCapacity"
    GENERATION_STARTED = "GenerationStarted"
    GENERATION_FAILED = "GenerationFailed"
    RETRY_SCHEDULED = "RetryScheduled"
    CLIP_UPLOADED = "ClipUploaded"
    CLIP_ADOPTED = "ClipAdopted"
    UPLOAD_FAILED = "UploadFailed"
    UPLOAD_RETRYING = "UploadRetrying"  # a paid output kept while its upload is tried again
    INVALID_OUTPUT = "InvalidOutput"  # the provider's output is not the clip asked for
    BUCKET_UNAVAILABLE = "BucketUnavailable"  # missing, denied or unreachable: no job starts
    JOB_LOST = "JobLost"
    JOB_MAY_BE_ORPHANED = "JobMayBeOrphaned"
    JOB_RECOVERED = "JobRecovered"
    DUPLICATE_CANCELED = "DuplicateCanceled"  # a second job for one marker, found late
    JOB_ABANDONED = "JobAbandoned"  # its output will not be used; canceled where possible
    RETRIES_EXHAUSTED = "RetriesExhausted"
    # drift and controls
    CLIP_MISSING = "ClipMissing"
    CLIP_RESTORED = "ClipRestored"
    CLIP_EDITED = "ClipEdited"  # a working clip derived from the original (no provider job)
    EDITING = "Editing"  # Ready=False while the working clip is derived
    CLIP_CHANGED = "ClipChanged"
    SPEC_CHANGED = "SpecChanged"
    REGENERATE_REQUESTED = "RegenerateRequested"
    RETRY_REQUESTED = "RetryRequested"
    PAUSED = "Paused"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    CLIPS_DELETED = "ClipsDeleted"
    CLIPS_RETAINED = "ClipsRetained"  # the CRD is being deleted: an uninstall deletes nothing
    # leader election (client-go's Event reason, on the Lease)
    LEADER_ELECTION = "LeaderElection"
    # readiness
    COMPLETED = "Completed"
    IN_PROGRESS = "InProgress"
    SCENES_FAILED = "ScenesFailed"
    SCENES_STALLED = "ScenesStalled"
    PROJECT_NOT_FOUND = "ProjectNotFound"
    # the final video (condition Assembled; VIDEO_ASSEMBLED is also its Event)
    ASSEMBLY_NOT_REQUESTED = "AssemblyNotRequested"
    WAITING_FOR_SCENES = "WaitingForScenes"
    ASSEMBLING = "Assembling"
    ASSEMBLY_FAILED = "AssemblyFailed"
    FINAL_VIDEO_MISSING = "FinalVideoMissing"
    VIDEO_ASSEMBLED = "VideoAssembled"
    FINAL_VIDEO_ADOPTED = "FinalVideoAdopted"
