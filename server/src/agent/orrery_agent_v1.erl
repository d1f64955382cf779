%% Orrery's agent: compiled on the target node from this source at attach, removed at
%% detach. It answers batched queries in one call and bounds what it copies off the node.
%% It never blocks a user process: state reads use sys:get_state/2 with a short timeout.
%% Keep this file ASCII only (it is sent to the node as a charlist).
-module(orrery_agent_v1).
-export([query/1, summary/0, modules/1, names/2, ets_info/2, trunc/2, processes/1,
         call_counts/1, trace_calls/2, version/0, pid_info/2, sup_tree/1]).

version() -> 1.

%% One call for everything a refresh needs. Req is a map; each key asks for one thing.
query(Req) when is_map(Req) ->
    Limits = maps:get(limits, Req, #{}),
    maps:fold(fun(K, V, Acc) ->
                      Acc#{K => safe(fun() -> run(K, V, Limits) end)}
              end, #{}, maps:remove(limits, Req)).

run(summary, _, _) -> summary();
run(modules, Mods, _) -> modules(Mods);
run(names, Names, Limits) -> names(Names, Limits);
run(ets, Tabs, Limits) -> ets_info(Tabs, Limits);
run(calls, Mods, _) -> call_counts(Mods);
run(processes, Opts, _) -> processes(Opts);
run(Other, _, _) -> {error, {unknown_query, Other}}.

safe(F) ->
    try F() catch C:R -> {error, {C, R}} end.

summary() ->
    Elixir = case application:get_key(elixir, vsn) of
                 {ok, V} -> list_to_binary(V);
                 undefined -> nil
             end,
    Apps = [{A, list_to_binary(Vsn)} || {A, _, Vsn} <- application:which_applications()],
    #{node => node(),
      otp => list_to_binary(erlang:system_info(otp_release)),
      erts => list_to_binary(erlang:system_info(version)),
      elixir => Elixir,
      apps => Apps,
      process_count => erlang:system_info(process_count),
      nodes => nodes(),
      hidden => nodes(hidden),
      memory => erlang:memory(total),
      uptime_ms => element(1, erlang:statistics(wall_clock)),
      agent => version()}.

%% Per module: loaded?, md5, how many processes run it.
modules(Mods) ->
    Counts = module_procs(Mods),
    maps:from_list([{M, module_info_of(M, maps:get(M, Counts, 0))} || M <- Mods]).

module_info_of(M, Procs) ->
    case code:is_loaded(M) of
        false -> #{loaded => false, procs => Procs};
        {file, File} ->
            Md5 = try erlang:get_module_info(M, md5) catch _:_ -> nil end,
            Attrs = try erlang:get_module_info(M, attributes) catch _:_ -> [] end,
            Vsn = proplists:get_value(vsn, Attrs, nil),
            Stale = case is_list(File) andalso beam_lib:md5(File) of
                        {ok, {_, Md5}} -> false;
                        {ok, {_, _}} -> true;
                        _ -> unknown
                    end,
            #{loaded => true, md5 => Md5, vsn => Vsn, procs => Procs, stale => Stale,
              file => file_name(File), old_code => erlang:check_old_code(M)}
    end.

file_name(F) when is_list(F) -> list_to_binary(F);
file_name(F) -> F.

module_procs([]) -> #{};
module_procs(Mods) ->
    Want = maps:from_list([{M, 0} || M <- Mods]),
    lists:foldl(fun(P, Acc) ->
                        case callback_module(P) of
                            M when is_map_key(M, Acc) -> Acc#{M := maps:get(M, Acc) + 1};
                            _ -> Acc
                        end
                end, Want, erlang:processes()).

%% The module a process "runs": the callback module of an OTP process, else its initial call.
callback_module(P) ->
    case erlang:process_info(P, [dictionary, initial_call]) of
        undefined -> undefined;
        [{dictionary, D}, {initial_call, {IM, _, _}}] ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {supervisor, M, _}} -> M;
                {_, {M, _, _}} -> M;
                false -> IM
            end
    end.

%% Registered names (atoms) -> pid, state (bounded), queue, memory, reductions.
names(Names, Limits) ->
    maps:from_list([{N, name_info(N, Limits)} || N <- Names]).

name_info(Name, Limits) ->
    case whereis(Name) of
        undefined -> nil;
        Pid -> pid_info(Pid, Limits)
    end.

pid_info(Pid, Limits) ->
    Info = erlang:process_info(Pid, [message_queue_len, memory, reductions, status,
                                     current_function]),
    case Info of
        undefined -> nil;
        _ ->
            Timeout = maps:get(state_timeout, Limits, 500),
            State = case maps:get(state, Limits, true) of
                        false -> nil;
                        true ->
                            try {ok, trunc(sys:get_state(Pid, Timeout), Limits)}
                            catch _:_ -> {error, not_available}
                            end
                    end,
            maps:from_list([{pid, Pid}, {state, State} | Info])
    end.

%% Supervision trees per application: [{App, Tree}] where Tree is
%% #{pid, name, type, module, children}. Bounded by depth and children per supervisor.
sup_tree(Limits) ->
    Depth = maps:get(depth, Limits, 6),
    Items = maps:get(items, Limits, 100),
    lists:filtermap(
      fun({App, _, _}) ->
              case catch application_controller:get_master(App) of
                  Master when is_pid(Master) ->
                      case catch application_master:get_child(Master) of
                          {Pid, Name} when is_pid(Pid) ->
                              {true, {App, sup_node(Pid, Name, supervisor, Depth, Items)}};
                          _ -> false
                      end;
                  _ -> false
              end
      end, application:which_applications()).

sup_node(Pid, Id, Type, Depth, Items) ->
    Name = case erlang:process_info(Pid, registered_name) of
               {registered_name, R} -> R;
               _ -> Id
           end,
    Base = #{pid => Pid, name => Name, id => Id, type => Type, module => callback_module(Pid)},
    case Type of
        supervisor when Depth > 0 ->
            Children = try supervisor:which_children(Pid) catch _:_ -> [] end,
            Base#{children => [child_node(C, Depth - 1, Items)
                               || C <- lists:sublist(Children, Items)],
                  child_count => length(Children)};
        _ -> Base
    end.

child_node({Id, Pid, Type, Mods}, Depth, Items) when is_pid(Pid) ->
    (sup_node(Pid, Id, Type, Depth, Items))#{modules => Mods};
child_node({Id, Pid, Type, Mods}, _, _) ->
    #{pid => Pid, name => Id, type => Type, modules => Mods}.

%% ETS tables by name -> info and the first rows (bounded).
ets_info(Tabs, Limits) ->
    Rows = maps:get(rows, Limits, 5),
    maps:from_list([{T, tab_info(T, Rows, Limits)} || T <- Tabs]).

tab_info(T, Rows, Limits) ->
    case ets:info(T) of
        undefined -> nil;
        Info ->
            WordSize = erlang:system_info(wordsize),
            First = case proplists:get_value(protection, Info) of
                        private -> [];
                        _ -> first_rows(T, ets:first(T), Rows, [])
                    end,
            #{type => proplists:get_value(type, Info),
              size => proplists:get_value(size, Info),
              memory => proplists:get_value(memory, Info) * WordSize,
              owner => proplists:get_value(owner, Info),
              protection => proplists:get_value(protection, Info),
              rows => trunc(First, Limits)}
    end.

first_rows(_T, '$end_of_table', _N, Acc) -> lists:reverse(Acc);
first_rows(_T, _K, 0, Acc) -> lists:reverse(Acc);
first_rows(T, K, N, Acc) ->
    first_rows(T, ets:next(T, K), N - 1, lists:reverse(ets:lookup(T, K)) ++ Acc).

%% A page of processes sorted by memory, reductions or message queue length.
processes(Opts) ->
    Sort = maps:get(sort, Opts, memory),
    Offset = maps:get(offset, Opts, 0),
    Limit = maps:get(limit, Opts, 50),
    Keys = [registered_name, memory, reductions, message_queue_len, current_function,
            initial_call],
    All = [{P, I} || P <- erlang:processes(),
                     (I = erlang:process_info(P, Keys)) =/= undefined],
    Sorted = lists:sort(fun({_, A}, {_, B}) ->
                                proplists:get_value(Sort, A) >= proplists:get_value(Sort, B)
                        end, All),
    Page = lists:sublist(Sorted, Offset + 1, Limit),
    #{total => length(All),
      items => [maps:from_list([{pid, P}, {module, callback_module(P)} | I]) || {P, I} <- Page]}.

%% Call counts for modules whose call_count tracing Orrery switched on.
call_counts(Mods) ->
    maps:from_list([{M, fun_counts(M)} || M <- Mods, code:is_loaded(M) =/= false]).

fun_counts(M) ->
    lists:foldl(fun({F, A}, Acc) ->
                        case erlang:trace_info({M, F, A}, call_count) of
                            {call_count, N} when is_integer(N) -> Acc#{{F, A} => N};
                            _ -> Acc
                        end
                end, #{}, erlang:get_module_info(M, functions)).

%% Switch call counting on (true) or off (false) for a module's functions.
trace_calls(M, On) when is_boolean(On) ->
    case code:is_loaded(M) of
        false -> 0;
        _ -> erlang:trace_pattern({M, '_', '_'}, On, [call_count])
    end.

%% Bound a term before it leaves the node: depth, items per container, binary bytes, and a
%% total budget of visited nodes. Cut parts become '$orrery_trunc' (or a cut-binary tuple).
trunc(T, Limits) ->
    Depth = maps:get(depth, Limits, 8),
    Items = maps:get(items, Limits, 50),
    Bin = maps:get(binary, Limits, 256),
    Budget = maps:get(budget, Limits, 5000),
    {R, _} = tr(T, Depth, Items, Bin, Budget),
    R.

tr(_, _, _, _, B) when B =< 0 -> {'$orrery_trunc', 0};
tr(_, 0, _, _, B) -> {'$orrery_trunc', B - 1};
tr(T, _, _, Bin, B) when is_binary(T), byte_size(T) > Bin ->
    {{'$orrery_trunc_bin', binary:part(T, 0, Bin), byte_size(T)}, B - 1};
tr(T, _, _, _, B) when is_bitstring(T), bit_size(T) > 8 * 4096 ->
    {'$orrery_trunc', B - 1};
tr(T, D, N, Bin, B) when is_list(T) -> tr_list(T, D - 1, N, Bin, B - 1, []);
tr(T, D, N, Bin, B) when is_tuple(T) ->
    L = tuple_to_list(T),
    {Elems, B2} = tr_elems(lists:sublist(L, N), D - 1, N, Bin, B - 1, []),
    Extra = case length(L) > N of true -> ['$orrery_trunc']; false -> [] end,
    {list_to_tuple(Elems ++ Extra), B2};
tr(T, D, N, Bin, B) when is_map(T) ->
    {Pairs, B2} = tr_pairs(maps:next(maps:iterator(T)), D - 1, N, Bin, B - 1, []),
    M = maps:from_list(Pairs),
    case map_size(T) > map_size(M) of
        true -> {M#{'$orrery_trunc' => map_size(T) - map_size(M)}, B2};
        false -> {M, B2}
    end;
tr(T, _, _, _, B) -> {T, B - 1}.

tr_list([], _, _, _, B, Acc) -> {lists:reverse(Acc), B};
tr_list(_, _, 0, _, B, Acc) -> {lists:reverse(['$orrery_trunc' | Acc]), B};
tr_list([H | T], D, N, Bin, B, Acc) ->
    {H2, B2} = tr(H, D, N, Bin, B),
    case B2 =< 0 andalso T =/= [] of
        true -> {lists:reverse(['$orrery_trunc', H2 | Acc]), 0};
        false -> tr_list(T, D, N - 1, Bin, B2, [H2 | Acc])
    end;
tr_list(Tail, D, N, Bin, B, Acc) ->
    %% improper tail
    {T2, B2} = tr(Tail, D, N, Bin, B),
    {lists:reverse(Acc) ++ T2, B2}.

tr_elems([], _, _, _, B, Acc) -> {lists:reverse(Acc), B};
tr_elems([H | T], D, N, Bin, B, Acc) ->
    {H2, B2} = tr(H, D, N, Bin, B),
    tr_elems(T, D, N, Bin, B2, [H2 | Acc]).

tr_pairs(none, _, _, _, B, Acc) -> {Acc, B};
tr_pairs(_, _, 0, _, B, Acc) -> {Acc, B};
tr_pairs(_, _, _, _, B, Acc) when B =< 0 -> {Acc, B};
tr_pairs({K, V, I}, D, N, Bin, B, Acc) ->
    {K2, B2} = tr(K, D, N, Bin, B),
    {V2, B3} = tr(V, D, N, Bin, B2),
    tr_pairs(maps:next(I), D, N - 1, Bin, B3, [{K2, V2} | Acc]).
