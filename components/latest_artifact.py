"""A Resolver strategy: the latest artifact of a channel, or none on a first run.

TFX's LatestArtifactStrategy returns None when nothing matches, which the
local runner records as a failed Resolver execution (the run goes on). A
first run has no previous statistics by design: this strategy resolves an
empty list instead, so every node of a healthy first run completes.
"""

from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy


class LatestArtifactOrNoneStrategy(LatestArtifactStrategy):
    def resolve_artifacts(self, store, input_dict):
        return self._resolve(input_dict)
