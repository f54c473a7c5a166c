# Jupyter server settings for Binder sessions (binder/start puts this folder on
# JUPYTER_CONFIG_PATH): open lesson 00 of the workspace copy, no news prompt, no update check.
import os

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.default_url = "/lab/tree/mmkit-lessons/00-welcome.ipynb"
c.LabApp.default_url = "/lab/tree/mmkit-lessons/00-welcome.ipynb"
# lab-settings/overrides.json: JupyterLab's setting defaults (fetchNews "false", no update check)
c.LabApp.app_settings_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab-settings")
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
