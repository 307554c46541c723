import { expect, test } from "@playwright/test";
import { BoardPage, createViaApi, registerUser } from "./board-page";

// Regenerates the README's picture of the board, signed in. Skipped unless
// BOARD_SCREENSHOT names the file to write; run it alone on a fresh
// database, e.g. `BOARD_SCREENSHOT=../docs/board.png scripts/e2e.sh docs-screenshot`.
const target = process.env.BOARD_SCREENSHOT;

test("a picture of the signed-in board", async ({ page, request }) => {
  test.skip(!target, "set BOARD_SCREENSHOT to write the picture");
  const ann = await registerUser(request, "ann", true);
  const bob = await registerUser(request, "bob", true);
  const tasks: [string, string, string | undefined, "todo" | "doing" | "done"][] = [
    ["Write the release notes", "Summarise every change since 0.9 for the blog post.", bob.username, "todo"],
    ["Load-test fan-out", "10k subscribers over two instances.", undefined, "todo"],
    ["Review the Redis broker PR", "Check resubscribe after a connection drop.", ann.username, "doing"],
    ["Design the login page", "", bob.username, "doing"],
    ["Set up CI", "make test on every push, under 90 minutes.", undefined, "done"],
    ["Pick a colour palette", "", ann.username, "done"],
  ];
  for (const [title, description, assignee, status] of tasks) {
    const task = await createViaApi(request, ann, title, description, assignee);
    if (status !== "todo") {
      const resp = await request.patch(`/tasks/${task.id}`, {
        data: { status },
        headers: { Authorization: `Bearer ${ann.token}` },
      });
      expect(resp.status()).toBe(200);
    }
  }
  const board = new BoardPage(page);
  await board.gotoSignedIn(bob);
  await expect(page.getByTestId("connection")).toHaveAttribute("data-personal", `user:${bob.username}`);
  // Only the notification should be in the picture.
  while ((await board.toasts.count()) > 0) await board.toasts.first().getByRole("button").click();
  await createViaApi(request, ann, "Announce on the forum", "", bob.username);
  await expect(board.toasts.filter({ hasText: "Task assigned to you" })).toBeVisible();
  // Let the arrival animations finish.
  await page.waitForTimeout(500);
  await page.screenshot({ path: target!, fullPage: false });
});
