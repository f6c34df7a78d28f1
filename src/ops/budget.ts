/**
 * A byte budget shared by several queues (DESIGN.md invariant 2): what they
 * hold together stays under `max`, whatever their number. A queue takes
 * bytes before it keeps something and gives them back when it lets go;
 * when `take` says no, the caller drops and counts. Capture's pending
 * requests and the replay queues each have one.
 */
export class ByteBudget {
  used = 0;
  /** Times a take was refused. */
  refusals = 0;

  constructor(readonly max: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.max) {
      this.refusals++;
      return false;
    }
    this.used += bytes;
    return true;
  }

  /** Takes bytes whatever the budget says, for what must not be refused (a delete that repairs a key). */
  charge(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
