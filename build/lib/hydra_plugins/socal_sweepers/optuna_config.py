"""Make ``conf/hydra/sweeper/optuna.yaml`` (socal's settings) the ``hydra/sweeper=optuna`` option.

hydra-optuna-sweeper stores its schema in Hydra's ConfigStore as ``hydra/sweeper/optuna``, with a
defaults list; Hydra refuses a YAML file of the same name next to such a schema ("automatic schema
matching"). Hydra calls this plugin after scanning all plugins and before composing any config:
it moves the plugin's schema to ``hydra/sweeper/optuna_schema``, which socal's YAML extends (so
the fields keep their types), and registers the resolver that turns the early-stopping metric
into Optuna's direction.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin

from socal.monitor import register_resolver

GROUP = "hydra/sweeper"
SCHEMA_NAME = "optuna_schema"


class SocalOptunaConfig(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        register_resolver()
        try:
            from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
        except ImportError:  # the `search` extra is not installed
            return
        store = ConfigStore.instance()
        store.repo["hydra"]["sweeper"].pop("optuna.yaml", None)
        store.store(group=GROUP, name=SCHEMA_NAME, node=OptunaSweeperConf, provider="socal")
