package kappa

// Kill stops a running app as a crash would: no final flush or commit.
func Kill(a *App) { a.kill() }
