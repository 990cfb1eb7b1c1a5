-- Lua peer of env-router's outbound mode (bench/envoy.ts), for the services in
-- filters/env-router/bench.json: the env comes from x-env, else from baggage's env= entry; a
-- client-sent route header is dropped; the route header names the env when the called service
-- runs it or the nearest env of its dotted fallback chain (Envoy's route table does the rest), and
-- nothing for the default env.
local SERVICES = {
  reviews = { ["default"] = true, ["feature-x"] = true, ["team-a"] = true },
  ratings = { ["default"] = true, ["team-a"] = true },
  details = { ["default"] = true },
  productpage = { ["default"] = true, ["feature-x"] = true },
}

function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get("x-env-route") ~= nil then headers:remove("x-env-route") end
  local env = headers:get("x-env")
  if env == nil then
    local baggage = headers:get("baggage")
    if baggage ~= nil then env = string.match(baggage, "env=([^,;%s]+)") end
  end
  if env == nil or env == "default" then return end
  local service = string.match(headers:get(":authority") or "", "^([^.:]+)")
  local envs = service and SERVICES[service]
  if envs == nil then return end
  -- feature-x.team-a falls back to team-a, then to the default env.
  while env ~= nil do
    if envs[env] then
      if env ~= "default" then headers:replace("x-env-route", env) end
      return
    end
    env = string.match(env, "^[^.]+%.(.+)$")
  end
end
