"""The shared progress display: a task with a unit shows its rate."""

from rich.progress import Progress

from clsctl.engine.progress import RateColumn


def test_rate_column_shows_the_rate_of_tasks_with_a_unit_only() -> None:
    now = [0.0]
    progress = Progress(get_time=lambda: now[0])
    images = progress.add_task("test", total=100, unit="img")
    epoch = progress.add_task("epoch", total=100)
    column = RateColumn()
    assert column.render(progress.tasks[images]).plain == "-"  # no rate before the first step
    for _ in range(4):
        now[0] += 0.5
        progress.advance(images, 10)
        progress.advance(epoch, 10)
    assert column.render(progress.tasks[images]).plain == "20.0 img/s"  # 30 images in the 1.5 s between samples
    assert column.render(progress.tasks[epoch]).plain == ""
