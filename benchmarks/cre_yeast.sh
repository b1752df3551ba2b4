#!/usr/bin/env bash
# Yeast promoter chain (de Boer 2020 random 80-mers): see cre_chain.sh for the settings.
exec "$(dirname "$0")/cre_chain.sh" yeast "$@"
