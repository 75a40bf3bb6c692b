/**
 * `work`, or a rejection with `message` once `ms` have passed (the timer is
 * cleared either way, so it never holds the process open). `onTimeout` runs
 * when the time is up, e.g. to abort the work.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, message: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout?.()
          reject(new Error(message))
        }, Math.max(0, ms))
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Whether `work` settles within `ms`; a rejection counts as settled (for shutdowns). */
export const settlesWithin = (work: Promise<unknown>, ms: number): Promise<boolean> =>
  withTimeout(
    work.then(
      () => true,
      () => true,
    ),
    ms,
    'timed out',
  ).catch(() => false)
