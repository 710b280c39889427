/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal and there is more
 * than one item, so piped output and logs stay clean.
 */
export class Progress {
  private readonly enabled: boolean;
  constructor(private readonly total: number, private readonly label: string) {
    this.enabled = total > 1 && process.stderr.isTTY === true;
  }

  update(done: number, extra = ''): void {
    if (!this.enabled) return;
    const width = 30;
    const filled = Math.round((done / this.total) * width);
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total}${extra ? ` ${extra}` : ''}\x1b[K`);
  }

  finish(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}
