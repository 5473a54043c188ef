-- wrk script: POST one iris row as {"instances": [[...]]}, with a bearer token when WRK_TOKEN is set.
wrk.method = "POST"
wrk.body = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
