#compdef clsctl

_clsctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _CLSCTL_COMPLETE=complete_zsh clsctl)
}

compdef _clsctl_completion clsctl
