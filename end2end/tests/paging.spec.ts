import { expect, test } from "@playwright/test";
import { BoardPage, authHeader, registerUser, storedTasks, unique } from "./board-page";

// No trace: recording a trace of a page with 1,000 cards kept the browser
// busy past the next test's setup time.
test.use({ trace: "off" });

test("a large board starts with its newest tasks and shows older ones on request", async ({ page, request }) => {
  // Hydrating 500 cards (each with its Markdown, controls and reactive
  // state) takes the debug build's WASM many seconds on a busy 2-core
  // machine; the release build does it far faster. This test checks what
  // is shown, not how fast: its speed is a known problem to fix.
  test.setTimeout(120_000);
  // 510 more tasks, from ten accounts at once (each within its publishing burst).
  const prefix = unique("Paged");
  const writers = await Promise.all(Array.from({ length: 10 }, () => registerUser(request, "pager")));
  await Promise.all(
    writers.map(async (user, w) => {
      for (let n = 0; n < 51; n++) {
        const resp = await request.post("/tasks", {
          data: { title: `${prefix} ${w}-${n}` },
          headers: authHeader(user),
        });
        expect(resp.status(), await resp.text()).toBe(201);
      }
    }),
  );
  const total = (await storedTasks(request)).length;
  expect(total).toBeGreaterThan(500);

  const board = new BoardPage(page);
  await board.goto();
  await board.waitForHydration();
  const cards = page.getByTestId("task");
  await expect(cards).toHaveCount(500, { timeout: 60_000 });
  const older = page.getByTestId("load-older");
  await expect(older).toBeEnabled();
  await older.click();
  await expect(cards).toHaveCount(Math.min(total, 1000), { timeout: 60_000 });
  if (total <= 1000) {
    await expect(older).toHaveCount(0);
    await expect(page.getByTestId("older-tasks")).toContainText("Every task is shown.");
  }
});
