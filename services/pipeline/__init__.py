"""The assembled product: which stages make the pipeline (``registry``), the whole config file
with each stage's own section (``config``), the settings that load it (``settings``) and
the one-machine stack of every service (``stack``). Everything above the stages reads these."""
