"""A plain-Python maze with the same rules as mbrl_jax.envs.GridMaze, for step-by-step tests."""

MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}


class ReferenceMaze:
    def __init__(
        self,
        layout,
        layout_after=None,
        change_step=None,
        step_reward=0.0,
        goal_reward=1.0,
        max_steps=10_000,
    ):
        self.layouts = [layout, layout_after or layout]
        self.change_step = change_step if change_step is not None else float("inf")
        self.step_reward, self.goal_reward, self.max_steps = step_reward, goal_reward, max_steps
        self.height, self.width = len(layout), len(layout[0])
        for r, row in enumerate(layout):
            for c, ch in enumerate(row):
                if ch == "S":
                    self.start = (r, c)
                if ch == "G":
                    self.goal = (r, c)
        self.total_steps = 0
        self.reset()

    def reset(self):
        self.pos, self.time = self.start, 0
        return self.index

    @property
    def index(self):
        return self.pos[0] * self.width + self.pos[1]

    def step(self, action):
        layout = self.layouts[0 if self.total_steps < self.change_step else 1]
        dr, dc = MOVES[action]
        r, c = self.pos[0] + dr, self.pos[1] + dc
        if 0 <= r < self.height and 0 <= c < self.width and layout[r][c] != "#":
            self.pos = (r, c)
        self.time += 1
        self.total_steps += 1
        terminated = self.pos == self.goal
        reward = self.goal_reward if terminated else self.step_reward
        truncated = self.time >= self.max_steps
        obs = self.index
        if terminated or truncated:
            obs = self.reset()
        return obs, reward, terminated, truncated
