"""Charts for the chat: what to draw (`specs`), drawing it (`draw`, runs in a worker process),
running the drawing off the event loop with a cap and a short cache (`renderer`), and the
`/chart` command's data gathering and captions (`service`)."""
